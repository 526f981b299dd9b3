"""What both sandboxes' OAuth endpoints read the same way: the client's credentials, the
account that consents, a redirect's query."""

import base64
import binascii
from collections.abc import Callable, Container
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from starlette.requests import Request


def with_query(url: str, params: dict[str, str]) -> str:
    """``url`` with ``params`` added to its query string."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + list(params.items())
    return urlunsplit(parts._replace(query=urlencode(query)))


def client_credentials(request: Request, form: dict[str, str]) -> tuple[str, str]:
    """client_id and client_secret, from HTTP Basic auth or the form."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "basic":
        try:
            key, _, secret = base64.b64decode(value).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return "", ""
        return key, secret
    return form.get("client_id", ""), form.get("client_secret", "")


def consenting_account(
    form: dict[str, str], field: str, accounts: Container[str], create: Callable[[str], str]
) -> str | None:
    """The account a consent form names: a new one for ``new_email`` (``create`` makes it
    and answers its id), else the one chosen in ``field``; None if there is no such one."""
    email = form.get("new_email", "").strip()
    account_id = create(email) if email else form.get(field, "")
    return account_id if account_id in accounts else None
