"""Identifiers, tokens and timestamps in the shapes Google uses."""

import secrets
import string
from datetime import UTC, datetime
from email.utils import formatdate

_URLSAFE = string.ascii_letters + string.digits + "-_"
_ALNUM = string.ascii_letters + string.digits


def _chars(n: int, alphabet: str = _URLSAFE) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def new_file_id() -> str:
    """33 characters starting with ``1``, like Drive's file ids."""
    return "1" + _chars(32)


def new_root_id() -> str:
    """A My Drive root folder id: ``0A...Uk9PVA`` (19 + 6 characters)."""
    return "0A" + _chars(17, _ALNUM) + "Uk9PVA"


def new_permission_id() -> str:
    """20 digits: a user's id as Drive's permissions show it."""
    return str(secrets.randbelow(9 * 10**19) + 10**19)


def new_access_token() -> str:
    return "ya29.a0" + _chars(160)


def new_refresh_token() -> str:
    return "1//0" + _chars(99)


def new_code() -> str:
    return "4/0" + _chars(70)


def new_client_id() -> str:
    digits = str(secrets.randbelow(9 * 10**11) + 10**11)
    return (
        f"{digits}-{_chars(32, string.ascii_lowercase + string.digits)}.apps.googleusercontent.com"
    )


def new_client_secret() -> str:
    return "GOCSPX-" + _chars(28)


def new_resource_id() -> str:
    return _chars(27)


def project_number(client_id: str) -> str:
    """The project a client id belongs to: its leading digits (or the whole id)."""
    head = client_id.split("-", 1)[0]
    return head if head.isdigit() else client_id


def rfc3339(at: float) -> str:
    """``2024-05-01T12:00:00.000Z``: Drive's timestamps, milliseconds included."""
    moment = datetime.fromtimestamp(at, tz=UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def http_date(at: float) -> str:
    """``Tue, 19 Nov 2013 01:13:52 GMT`` (``X-Goog-Channel-Expiration``)."""
    return formatdate(at, usegmt=True)
