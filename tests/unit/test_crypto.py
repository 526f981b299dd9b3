"""Secrets at rest: the key file, and a box that follows it during a rotation."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from pydantic import ValidationError

from relaybox import crypto
from relaybox.config import Settings
from relaybox.crypto import (
    KEY_FILE,
    SecretBox,
    generate_key,
    new_secret,
    parse_keys,
    secret_weakness,
    write_key_file,
)


def test_a_box_on_the_key_file_reads_rows_encrypted_under_a_key_added_later(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    running = SecretBox.load(None, tmp_path)  # generates the key file
    path = tmp_path / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    (old,) = running.keys
    old_row = running.encrypt("app secret")

    new = generate_key()
    write_key_file(path, [new, old])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    rotated = SecretBox(new, old).rotate(old_row)
    assert SecretBox(new).decrypt(rotated) == "app secret"
    # The running box has not looked at the file yet; a row it cannot read makes it look.
    assert running.decrypt(rotated) == "app secret"
    assert running.keys == (new, old)
    assert running.under_primary(running.encrypt("x")), "it now encrypts with the new key"

    # After the file changes again, encryption follows within RELOAD_SECONDS.
    monkeypatch.setattr(crypto, "RELOAD_SECONDS", 0.0)
    write_key_file(path, [new])
    running.encrypt("y")
    assert list(running.keys) == [new]
    with pytest.raises(ValueError):
        running.decrypt(old_row)


def test_a_configured_key_list_never_reads_files(tmp_path: Path) -> None:
    first, second = generate_key(), generate_key()
    box = SecretBox.load(f"{first}, {second}", tmp_path)
    assert box.keys == (first, second) and box.key_file is None
    assert not (tmp_path / KEY_FILE).exists()
    assert parse_keys(f"{first}\n{second}\n") == [first, second]
    with pytest.raises(ValueError):
        box.decrypt(SecretBox(generate_key()).encrypt("x"))


def test_a_broken_key_file_keeps_the_keys_in_use(tmp_path: Path) -> None:
    box = SecretBox.load(None, tmp_path)
    token = box.encrypt("x")
    (tmp_path / KEY_FILE).write_text("not a key\n")
    with pytest.raises(ValueError):
        box.decrypt(SecretBox(generate_key()).encrypt("y"))  # forces a look at the file
    assert box.decrypt(token) == "x"
    with pytest.raises(ValueError):
        write_key_file(tmp_path / KEY_FILE, ["not a key"])


@pytest.mark.parametrize(
    ("secret", "weakness"),
    [
        ("test-user-secret", "too short (16 characters; at least 32)"),
        ("a" * 31, "too short (31 characters; at least 32)"),
        ("01234567" * 5, "too repetitive (fewer than 10 different characters)"),
        ("Zq8vN3kR7tW1yB5m D9fH2jL6pS4xC0gE", "contains a space or a comma"),
        ("Zq8vN3kR7tW1yB5m,D9fH2jL6pS4xC0gE", "contains a space or a comma"),
        ("Zq8vN3kR7tW1yB5mD9fH2jL6pS4xC0gE", None),
        (new_secret(), None),
    ],
)
def test_weak_secrets_are_named_for_what_is_wrong(secret: str, weakness: str | None) -> None:
    found = secret_weakness(secret)
    assert found == weakness if weakness is None else (found or "").startswith(weakness)


def test_settings_refuse_a_weak_bootstrap_secret_without_echoing_it() -> None:
    strong = "Zq8vN3kR7tW1yB5mD9fH2jL6pS4xC0gE"
    with pytest.raises(ValidationError) as refused:
        Settings(bootstrap_user_secret="test-user-secret", bootstrap_org_secret=strong)
    assert "too short" in str(refused.value) and "test-user-secret" not in str(refused.value)
    with pytest.raises(ValidationError, match="must differ"):
        Settings(bootstrap_user_secret=strong, bootstrap_org_secret=strong)
    assert Settings(bootstrap_user_secret=strong, bootstrap_org_secret=new_secret())
    assert Settings(bootstrap_user_secret="", bootstrap_org_secret="").bootstrap_user_secret == ""
