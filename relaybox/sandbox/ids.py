"""Identifiers, tokens and timestamps in the shapes Dropbox uses."""

import secrets
import string
import time
from datetime import UTC, datetime

_ALPHABET = string.ascii_letters + string.digits + "-_"


def _random_chars(n: int) -> str:
    return "".join(secrets.choice(_ALPHABET) for _ in range(n))


def new_account_id() -> str:
    """``dbid:`` plus 35 characters (40 in all), as Dropbox's account ids."""
    return "dbid:AA" + _random_chars(33)


def new_file_id() -> str:
    """``id:`` plus 22 characters, like ``id:a4ayc_80_OEAAAAAAAAAXw``."""
    return "id:" + _random_chars(22)


def new_rev(serial: int) -> str:
    """At least 9 lowercase hex characters, increasing with ``serial``."""
    return f"{serial:09x}{secrets.token_hex(3)}"


def new_access_token() -> str:
    return "sl." + _random_chars(140)


def new_refresh_token() -> str:
    return _random_chars(64)


def new_code() -> str:
    return _random_chars(43)


def timestamp(at: float | None = None) -> str:
    """``%Y-%m-%dT%H:%M:%SZ``, no fraction (Dropbox's timestamp format)."""
    moment = datetime.fromtimestamp(time.time() if at is None else at, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")
