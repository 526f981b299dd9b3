"""`relaybox admin rotate-key`: every stored secret re-encrypted under a new key while the
server runs; webhooks (app secret), deliveries (signature key) and Dropbox calls (tokens)
keep working throughout and after a restart with the new key alone; the old key alone no
longer decrypts anything (docs/operations.md)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from pathlib import Path

import pytest
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from relaybox.config import Settings
from relaybox.crypto import KEY_FILE, SecretBox, parse_keys
from relaybox.runtime import Runtime
from relaybox.services import keys
from relaybox.services.instances import InstanceService
from relaybox.store import tables
from relaybox.store.db import create_engine, session_factory, transaction
from tests.support.servers import CallbackReceiver
from tests.support.stack import APP_SECRET, AUTH, Stack, running_stack

SIGNATURE_KEY = "sig-key-123"


def assert_signed(receiver: CallbackReceiver) -> None:
    verifier = Webhook("whsec_" + base64.b64encode(SIGNATURE_KEY.encode()).decode())
    for item in receiver.received:
        verifier.verify(item.body, item.headers)


async def delivered(stack: Stack, account: str, path: str) -> None:
    await stack.upload(account, path, path.encode())
    await stack.receiver.wait_for(lambda r: path in [e["path"] for e in r.events()])
    assert_signed(stack.receiver)


async def test_rotate_while_serving_then_restart_with_the_new_key_only(
    tmp_path: Path, database_url: str
) -> None:
    # No RELAYBOX_SECRET_KEY: the key lives in the data dir's key file (the default).
    async with running_stack(tmp_path, database_url, secret_key=None) as stack:
        data_dir = stack.settings.data_dir
        key_file = data_dir / KEY_FILE
        (old_key,) = parse_keys(key_file.read_text())
        accounts = [await stack.new_account(f"u{n}@example.com") for n in range(3)]
        instances = [await stack.connect(a, f"dropbox {n}") for n, a in enumerate(accounts)]
        await delivered(stack, accounts[0], "/before.txt")

        runtime = await Runtime.start(stack.settings, migrate=False)
        try:
            # Rotate in small batches while changes keep flowing through the running server.
            rotation, _ = await asyncio.gather(
                keys.rotate_key_file(runtime.sessions, data_dir, settle=1.2),
                delivered(stack, accounts[1], "/during.txt"),
            )
            assert rotation.remaining == 0 and rotation.rewritten >= 3
            assert rotation.key_file == key_file
            assert parse_keys(key_file.read_text()) == [rotation.new_key, old_key]
            await delivered(stack, accounts[2], "/after-rotate.txt")

            again = await keys.rotate_key_file(runtime.sessions, data_dir, settle=0)
            assert again.remaining == 0, "running it again is safe"
            new_key = again.new_key
            assert new_key is not None
            box = SecretBox.load(None, data_dir)
            retired = await keys.retire_old_keys(runtime.sessions, box, box.key_file)
            assert retired.remaining == 0
            assert parse_keys(key_file.read_text()) == [new_key]
        finally:
            await runtime.close()

        # The running server follows the file: it still reads and writes every secret.
        await delivered(stack, accounts[0], "/after-retire.txt")
        for instance in instances:
            answer = await stack.http.get(f"{stack.api}/instances/{instance['id']}", headers=AUTH)
            assert answer.status_code == 200
            assert answer.json()["token"] == instance["token"]

        # "Restart" with the new key alone (configured, no key file): everything decrypts,
        # and the decrypted Dropbox tokens still work.
        fresh = await Runtime.start(
            stack.settings.model_copy(update={"secret_key": new_key}), migrate=False
        )
        stale = await Runtime.start(
            stack.settings.model_copy(update={"secret_key": old_key}), migrate=False
        )
        try:
            async with transaction(fresh.sessions) as session:
                rows = list(
                    await session.scalars(select(tables.Instance).order_by(tables.Instance.id))
                )
            assert len(rows) == 3
            service = InstanceService(fresh)
            for row, instance in zip(rows, instances, strict=True):
                creds = service.credentials(row)
                assert creds.config.app_secret == APP_SECRET
                assert creds.config.signature_key == SIGNATURE_KEY
                assert fresh.box.decrypt(row.token_enc) == instance["token"]
                assert creds.access_token
                account = await fresh.connector("dropbox").account(creds.access_token)
                assert account.account_id == row.account_id
                with pytest.raises(ValueError):
                    stale.box.decrypt(row.secrets_enc)
                with pytest.raises(ValueError):
                    stale.box.decrypt(row.token_enc)
        finally:
            await fresh.close()
            await stale.close()


async def test_configured_key_list_rotation(tmp_path: Path, database_url: str) -> None:
    """RELAYBOX_SECRET_KEY mode: with `new,old` configured, every row moves to `new`."""
    async with running_stack(tmp_path, database_url) as stack:
        old_key = stack.settings.secret_key
        assert old_key
        account = await stack.new_account("env@example.com")
        instance = await stack.connect(account)
        new_key = SecretBox.load(None, tmp_path / "other").keys[0]
        both = stack.settings.model_copy(update={"secret_key": f"{new_key},{old_key}"})
        runtime = await Runtime.start(both, migrate=False)
        try:
            assert await keys.not_rotated(runtime.sessions, runtime.box) == 1
            done = await keys.reencrypt_all(runtime.sessions, runtime.box, settle=0, batch=1)
            assert (done.rewritten, done.remaining) == (1, 0)
            done = await keys.retire_old_keys(runtime.sessions, runtime.box, None)
            assert (done.rewritten, done.remaining) == (0, 0)
        finally:
            await runtime.close()
        only_new = await Runtime.start(
            stack.settings.model_copy(update={"secret_key": new_key}), migrate=False
        )
        try:
            async with transaction(only_new.sessions) as session:
                row = await session.get(tables.Instance, instance["id"])
                assert row is not None
                assert only_new.box.decrypt(row.token_enc) == instance["token"]
                with pytest.raises(ValueError):
                    SecretBox(old_key).decrypt(row.secrets_enc)
        finally:
            await only_new.close()


async def test_two_rotations_at_once_keep_every_key(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two `relaybox admin rotate-key` runs at once: the second waits for the first, so the
    key file ends with both new keys and the old one, and every row still decrypts.

    Both runs are held just after reading the key file until the other has read it too (or
    a second has passed): without a lock each would then write the list it read plus its own
    key, and one key, with the rows sealed under it, would be lost.
    """
    data_dir = tmp_path / "data"
    settings = Settings(data_dir=data_dir, database_url=database_url)
    runtime = await Runtime.start(settings)
    try:
        (old_key,) = runtime.box.keys
        async with transaction(runtime.sessions) as session:
            org = tables.Organization(name="org", secret_hash="0" * 64)
            session.add(org)
            await session.flush()
            for n in range(5):
                session.add(
                    tables.Instance(
                        org_id=org.id,
                        name=f"instance {n}",
                        element_key="dropbox",
                        token_hash=f"{n:064}",
                        token_enc=runtime.box.encrypt(f"token {n}"),
                        secrets_enc=runtime.box.encrypt_json({"n": n}),
                    )
                )
    finally:
        await runtime.close()

    both_read = threading.Barrier(2)
    generate = keys.generate_key

    def generate_once_both_have_read() -> str:
        with contextlib.suppress(threading.BrokenBarrierError):
            both_read.wait(timeout=1)
        return generate()

    monkeypatch.setattr(keys, "generate_key", generate_once_both_have_read)

    def rotate_key_command() -> keys.Rotation:
        async def run() -> keys.Rotation:
            engine = create_engine(settings.resolved_database_url)
            try:
                return await keys.rotate_key_file(session_factory(engine), data_dir, settle=0)
            finally:
                await engine.dispose()

        return asyncio.run(run())

    first, second = await asyncio.gather(
        asyncio.to_thread(rotate_key_command), asyncio.to_thread(rotate_key_command)
    )
    assert first.remaining == second.remaining == 0
    in_file = parse_keys((data_dir / KEY_FILE).read_text())
    assert sorted(in_file) == sorted([first.new_key, second.new_key, old_key])
    assert in_file[-1] == old_key

    box = SecretBox.load(None, data_dir)
    engine = create_engine(settings.resolved_database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            rows = list(await session.scalars(select(tables.Instance).order_by(tables.Instance.id)))
    finally:
        await engine.dispose()
    assert [box.decrypt(row.token_enc) for row in rows] == [f"token {n}" for n in range(5)]
    assert [box.decrypt_json(row.secrets_enc) for row in rows] == [{"n": n} for n in range(5)]
    assert all(box.under_primary(row.token_enc) for row in rows)
