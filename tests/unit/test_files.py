"""Files that hold secrets: replaced atomically and durably, private, locked between writers."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from relaybox.crypto import KEY_FILE, generate_key, load_or_create_key, parse_keys, write_key_file
from relaybox.files import FileLock


def test_the_key_file_is_replaced_whole_private_and_its_folder_synced_after_the_rename(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """What can be seen of durability without pulling the power: the new file is fsynced
    before the rename and the folder (which holds the rename) after it."""
    path = tmp_path / KEY_FILE
    path.write_text("an older, wider file\n")
    path.chmod(0o644)
    calls: list[tuple[str, object]] = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd: int) -> None:
        info = os.fstat(fd)
        calls.append(("fsync folder" if stat.S_ISDIR(info.st_mode) else "fsync file", info.st_ino))
        real_fsync(fd)

    def replace(source: str | os.PathLike[str], target: str | os.PathLike[str]) -> None:
        calls.append(("replace", Path(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    keys = [generate_key(), generate_key()]
    write_key_file(path, keys)

    assert [name for name, _ in calls] == ["fsync file", "replace", "fsync folder"]
    assert calls[1][1] == path
    assert calls[0][1] == path.stat().st_ino, "the file synced is the one now in place"
    assert calls[2][1] == tmp_path.stat().st_ino
    assert parse_keys(path.read_text()) == keys
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == [KEY_FILE], "no temporary file is left"


def test_processes_starting_together_on_a_new_data_dir_agree_on_one_key(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    start = threading.Barrier(8)
    keys: list[str] = []
    errors: list[BaseException] = []

    def starting() -> None:
        start.wait()
        try:
            keys.append(load_or_create_key(None, data_dir))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=starting) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors and len(keys) == 8
    assert set(keys) == {(data_dir / KEY_FILE).read_text().strip()}


def test_a_file_lock_is_held_by_one_holder_at_a_time(tmp_path: Path) -> None:
    lock_path = tmp_path / "thing.lock"
    inside = 0
    most = 0
    guard = threading.Lock()

    def hold() -> None:
        nonlocal inside, most
        with FileLock(lock_path):  # each holder opens the file itself, as a process would
            with guard:
                inside += 1
                most = max(most, inside)
            time.sleep(0.02)
            with guard:
                inside -= 1

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert most == 1
    assert stat.S_IMODE(lock_path.stat().st_mode) == 0o600
