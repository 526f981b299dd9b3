"""The provider-facing receiver: challenge, signature check before storing, size limit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from relaybox.api.throttle import FAILURE_LIMIT
from relaybox.core.signing import dropbox_signature
from relaybox.store import tables
from relaybox.store.db import create_engine
from tests.support.stack import APP_SECRET, Stack, running_stack


async def stored_notifications(stack: Stack) -> int:
    engine = create_engine(stack.settings.resolved_database_url)
    try:
        async with engine.connect() as connection:
            count = await connection.scalar(select(func.count()).select_from(tables.InboxItem))
    finally:
        await engine.dispose()
    return int(count or 0)


async def test_challenge_is_echoed_as_plain_text(tmp_path: Path, database_url: str) -> None:
    async with running_stack(tmp_path, database_url) as stack:
        url = f"{stack.api}/events/dropbox"
        answer = await stack.http.get(url, params={"challenge": "abc123XYZ"})
        assert answer.status_code == 200
        assert answer.content == b"abc123XYZ"
        assert answer.headers["content-type"] == "text/plain"
        assert answer.headers["x-content-type-options"] == "nosniff"
        missing = await stack.http.get(url)
        assert missing.status_code == 400
        assert "challenge" in missing.json()["message"]


async def test_signature_is_checked_before_anything_is_stored(
    tmp_path: Path, database_url: str
) -> None:
    async with running_stack(tmp_path, database_url) as stack:
        account = await stack.new_account("ada@example.com")
        await stack.connect(account)
        url = f"{stack.api}/events/dropbox"
        body = json.dumps({"list_folder": {"accounts": [account]}, "delta": {"users": [1]}})
        before = await stored_notifications(stack)

        wrong = await stack.http.post(
            url,
            content=body,
            headers={"X-Dropbox-Signature": dropbox_signature("nope", body.encode())},
        )
        assert wrong.status_code == 403
        assert "X-Dropbox-Signature" in wrong.json()["message"]
        unsigned = await stack.http.post(url, content=body)
        assert unsigned.status_code == 403
        assert await stored_notifications(stack) == before

        right = await stack.http.post(
            url,
            content=body,
            headers={"X-Dropbox-Signature": dropbox_signature(APP_SECRET, body.encode())},
        )
        assert right.status_code == 200
        assert await stored_notifications(stack) == before + 1

        not_json = b"not json"
        garbage = await stack.http.post(
            url,
            content=not_json,
            headers={"X-Dropbox-Signature": dropbox_signature(APP_SECRET, not_json)},
        )
        assert garbage.status_code == 400
        shape = json.dumps({"list_folder": {"accounts": "dbid:x"}}).encode()
        bad_shape = await stack.http.post(
            url,
            content=shape,
            headers={"X-Dropbox-Signature": dropbox_signature(APP_SECRET, shape)},
        )
        assert bad_shape.status_code == 400
        assert "list_folder" in bad_shape.json()["message"]

        huge = b"x" * (1024 * 1024 + 1)
        too_large = await stack.http.post(
            url, content=huge, headers={"X-Dropbox-Signature": dropbox_signature(APP_SECRET, huge)}
        )
        assert too_large.status_code == 413
        assert await stored_notifications(stack) == before + 1


async def test_chunked_body_over_the_limit_is_413(tmp_path: Path) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'chunked.db'}"
    async with running_stack(tmp_path, database) as stack:

        async def chunks() -> Any:
            for _ in range(17):
                yield b"x" * 65536

        answer = await stack.http.post(
            f"{stack.api}/events/dropbox",
            content=chunks(),
            headers={"X-Dropbox-Signature": "0" * 64},
        )
        assert answer.status_code == 413
        assert "body" in answer.json()["message"]


async def test_signed_notification_for_an_unknown_account_is_accepted(tmp_path: Path) -> None:
    """Dropbox disables a webhook that keeps failing: a genuine body naming an account relaybox
    does not serve (any more) is answered 200 and starts nothing."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'unknown.db'}"
    async with running_stack(tmp_path, database) as stack:
        account = await stack.new_account("known@example.com")
        await stack.connect(account)
        before = await stored_notifications(stack)
        body = json.dumps({"list_folder": {"accounts": ["dbid:" + "x" * 35]}}).encode()
        url = f"{stack.api}/events/dropbox"
        answer = await stack.http.post(
            url, content=body, headers={"X-Dropbox-Signature": dropbox_signature(APP_SECRET, body)}
        )
        assert answer.status_code == 200
        assert await stored_notifications(stack) == before + 1
        forged = await stack.http.post(
            url, content=body, headers={"X-Dropbox-Signature": dropbox_signature("other", body)}
        )
        assert forged.status_code == 403
        huge_int = b'{"list_folder": {"accounts": []}, "delta": ' + b"1" * 5000 + b"}"
        odd = await stack.http.post(
            url,
            content=huge_int,
            headers={"X-Dropbox-Signature": dropbox_signature(APP_SECRET, huge_int)},
        )
        assert odd.status_code == 400


async def test_forged_webhooks_are_limited_per_address_but_genuine_ones_never(
    tmp_path: Path,
) -> None:
    """Every 403 counts against the sender's address; past FAILURE_LIMIT a forged body is
    answered 429 before it is parsed or looked up, while a correctly signed webhook from
    the same address is still accepted (a proxy shared with forgers must not cut Dropbox
    off)."""
    database = f"sqlite+aiosqlite:///{tmp_path / 'forged.db'}"
    async with running_stack(tmp_path, database) as stack:
        account = await stack.new_account("forged@example.com")
        await stack.connect(account)
        url = f"{stack.api}/events/dropbox"
        body = json.dumps({"list_folder": {"accounts": [account]}}).encode()
        forged = {"X-Dropbox-Signature": dropbox_signature("not-the-app-secret", body)}
        before = await stored_notifications(stack)

        malformed = await stack.http.post(url, content=body, headers={"X-Dropbox-Signature": "x"})
        assert malformed.status_code == 403
        for _ in range(FAILURE_LIMIT - 1):
            assert (await stack.http.post(url, content=body, headers=forged)).status_code == 403
        limited = await stack.http.post(url, content=body, headers=forged)
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        assert "try again later" in limited.json()["message"]

        genuine = {"X-Dropbox-Signature": dropbox_signature(APP_SECRET, body)}
        assert (await stack.http.post(url, content=body, headers=genuine)).status_code == 200
        assert await stored_notifications(stack) == before + 1
