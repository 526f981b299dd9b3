"""Secrets at rest: Fernet encryption under RELAYBOX_SECRET_KEY, and hashed credentials."""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import json
import secrets
import time
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from relaybox.files import FileLock, atomic_write, private_dir, private_file

KEY_FILE = "secret.key"
# How often a box built from the key file looks at the file again (see `SecretBox`).
RELOAD_SECONDS = 1.0


def parse_keys(text: str) -> list[str]:
    """A key list as configured: comma- or newline-separated, first key first."""
    return [key.strip() for key in text.replace("\n", ",").split(",") if key.strip()]


def generate_key() -> str:
    return Fernet.generate_key().decode()


def key_lock(key_file: Path) -> FileLock:
    """The lock beside `key_file` that every writer of it holds (`relaybox admin rotate-key`)."""
    return FileLock(key_file.with_name(key_file.name + ".lock"))


def load_or_create_key(configured: str | None, data_dir: Path) -> str:
    """The configured key, else the one generated once into the data dir (mode 0600).

    Processes starting together on a new data dir agree on one key: the first to take the
    key file's lock writes it, the others read it.
    """
    if configured:
        return configured
    path = data_dir / KEY_FILE
    private_dir(data_dir)
    if not path.exists():
        with key_lock(path):
            if not path.exists():
                key = generate_key()
                atomic_write(path, key + "\n")
                return key
    private_file(path)  # a key file copied in with a wider mode
    return path.read_text().strip()


def write_key_file(path: Path, keys: list[str]) -> None:
    """Replace the key file atomically and durably (mode 0600), so a reader sees the old or
    the new list and a crash leaves one of them. Writers hold `key_lock(path)`."""
    for key in keys:
        Fernet(key.encode())  # refuse to write something that is not a key
    atomic_write(path, ",".join(keys) + "\n")


class SecretBox:
    """Encrypts with the first key, decrypts with any (so keys can be rotated).

    A box built from the key file (`SecretBox.load` without a configured key) follows the
    file: it looks at it again at most every `RELOAD_SECONDS` before encrypting or
    decrypting, and at once when a token does not decrypt. So `relaybox admin rotate-key`,
    which prepends a new key to the file and then re-encrypts the rows, never leaves a
    running process unable to read a row, and within a second every process encrypts with
    the new key (docs/operations.md).
    """

    def __init__(self, *keys: str, key_file: Path | None = None) -> None:
        if not keys:
            raise ValueError("at least one key is needed")
        self.key_file = key_file
        self._stamp = self._file_stamp()
        self._checked = time.monotonic()
        self._use(list(keys))

    @classmethod
    def load(cls, configured: str | None, data_dir: Path) -> SecretBox:
        """The box for RELAYBOX_SECRET_KEY if set, else for the data dir's key file."""
        keys = parse_keys(load_or_create_key(configured, data_dir))
        return cls(*keys, key_file=None if configured else data_dir / KEY_FILE)

    @property
    def keys(self) -> tuple[str, ...]:
        return self._keys

    def _use(self, keys: list[str]) -> None:
        self._keys = tuple(keys)
        self._primary = Fernet(keys[0].encode())
        self._fernet = MultiFernet([Fernet(key.encode()) for key in keys])

    def _file_stamp(self) -> tuple[int, int, int] | None:
        if self.key_file is None:
            return None
        try:
            info = self.key_file.stat()
        except OSError:
            return None
        return (info.st_ino, info.st_mtime_ns, info.st_size)

    def _refresh(self, *, force: bool = False) -> bool:
        """Re-read the key file if it changed; True when the keys changed."""
        if self.key_file is None:
            return False
        now = time.monotonic()
        if not force and now - self._checked < RELOAD_SECONDS:
            return False
        self._checked = now
        stamp = self._file_stamp()
        if stamp is None or stamp == self._stamp:
            return False
        self._stamp = stamp
        try:
            keys = parse_keys(self.key_file.read_text())
            if not keys or tuple(keys) == self._keys:
                return False
            self._use(keys)
        except (OSError, ValueError):
            return False  # a broken file: keep the keys we have
        return True

    def encrypt(self, plaintext: str) -> str:
        self._refresh()
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        self._refresh()
        try:
            return self._fernet.decrypt(token.encode()).decode()
        except InvalidToken:
            pass
        if self._refresh(force=True):
            with contextlib.suppress(InvalidToken):
                return self._fernet.decrypt(token.encode()).decode()
        raise ValueError("stored secret cannot be decrypted with the configured key")

    def encrypt_json(self, value: dict[str, Any]) -> str:
        return self.encrypt(json.dumps(value, separators=(",", ":")))

    def decrypt_json(self, token: str) -> dict[str, Any]:
        value = json.loads(self.decrypt(token))
        if not isinstance(value, dict):
            raise ValueError("stored secrets are not an object")
        return value

    def under_primary(self, token: str) -> bool:
        """Whether `token` decrypts with the first key alone (is already rotated)."""
        try:
            self._primary.decrypt(token.encode())
        except InvalidToken:
            return False
        return True

    def rotate(self, token: str) -> str:
        """Re-encrypt a token under the first key."""
        try:
            return self._fernet.rotate(token.encode()).decode()
        except InvalidToken as exc:
            raise ValueError("stored secret cannot be decrypted with the configured key") from exc


def new_secret() -> str:
    return secrets.token_urlsafe(32)


# What a secret an operator chooses (RELAYBOX_BOOTSTRAP_*) must have at least; new_secret()
# gives 43 characters drawn from 64.
MIN_SECRET_LENGTH = 32
MIN_DISTINCT_CHARACTERS = 10


def secret_weakness(secret: str) -> str | None:
    """Why `secret` is too weak to be a credential, or None when it will do."""
    if len(secret) < MIN_SECRET_LENGTH:
        return f"too short ({len(secret)} characters; at least {MIN_SECRET_LENGTH})"
    if any(char.isspace() or char == "," for char in secret):
        return "contains a space or a comma, which an Authorization header cannot carry"
    if len(set(secret)) < MIN_DISTINCT_CHARACTERS:
        return f"too repetitive (fewer than {MIN_DISTINCT_CHARACTERS} different characters)"
    return None


def secret_hash(secret: str) -> str:
    """What is stored of a credential: enough to find it, nothing to recover it."""
    return hashlib.sha256(secret.encode()).hexdigest()


def same_secret(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(secret_hash(secret), stored_hash)
