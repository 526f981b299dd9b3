"""What an operator's data folder looks like after a start: the folder, the SQLite database
(with its -wal and -shm files) and the key file are for relaybox's user alone, whatever the
umask; and a weak bootstrap secret is refused before anything starts (docs/security.md)."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from relaybox.config import Settings
from relaybox.crypto import KEY_FILE
from relaybox.runtime import Runtime
from relaybox.services.orgs import bootstrap, create_org
from tests.support.processes import run_command


@pytest.fixture(autouse=True)
def common_umask() -> Iterator[None]:
    """The usual umask (022), under which a file created without a mode is world-readable."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


async def test_a_first_start_makes_the_data_folder_and_every_file_in_it_private(
    tmp_path: Path,
) -> None:
    data_dir = tmp_path / "data"
    runtime = await Runtime.start(Settings(data_dir=data_dir))
    try:
        assert await bootstrap(runtime) is not None
        await create_org(runtime, "second", "b@example.com")
        database = data_dir / "relaybox.db"
        files = [database, data_dir / "relaybox.db-wal", data_dir / "relaybox.db-shm"]
        files.append(data_dir / KEY_FILE)
        assert mode(data_dir) == 0o700
        assert {path.name: mode(path) for path in files} == {path.name: 0o600 for path in files}
    finally:
        await runtime.close()


async def test_files_an_older_version_left_readable_are_narrowed_at_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    runtime = await Runtime.start(Settings(data_dir=data_dir))
    await runtime.close()
    database, key_file = data_dir / "relaybox.db", data_dir / KEY_FILE
    for path in (database, key_file):
        path.chmod(0o644)
    runtime = await Runtime.start(Settings(data_dir=data_dir))
    try:
        await create_org(runtime, "after upgrade", "c@example.com")
        assert mode(database) == 0o600 and mode(key_file) == 0o600
        assert mode(data_dir / "relaybox.db-wal") == 0o600
    finally:
        await runtime.close()


@pytest.mark.parametrize(
    ("user_secret", "org_secret", "complaint"),
    [
        ("test-user-secret", "Zq8vN3kR7tW1yB5mD9fH2jL6pS4xC0gE", "too short"),
        ("Zq8vN3kR7tW1yB5mD9fH2jL6pS4xC0gE", "abababababababababababababababab", "too repetitive"),
        ("Zq8vN3kR7tW1yB5mD9fH2jL6pS4xC0gE", "Zq8vN3kR7tW1yB5mD9fH2jL6pS4xC0gE", "must differ"),
    ],
)
async def test_a_weak_bootstrap_secret_is_refused_at_start(
    tmp_path: Path, user_secret: str, org_secret: str, complaint: str
) -> None:
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "RELAYBOX_DATA_DIR": str(data_dir),
        "RELAYBOX_BOOTSTRAP_USER_SECRET": user_secret,
        "RELAYBOX_BOOTSTRAP_ORG_SECRET": org_secret,
    }
    env.pop("RELAYBOX_DATABASE_URL", None)
    code, out, err = await run_command(env, "serve", "--port", "0", timeout=30)
    said = out + err
    assert code == 2, said
    assert said.startswith("relaybox: configuration refused:"), said
    assert "RELAYBOX_BOOTSTRAP_" in said and complaint in said
    for secret in (user_secret, org_secret):
        assert secret not in said, "a refused secret is never echoed"
    assert not data_dir.exists(), "refused before anything was created"
