"""The console's session: one encrypted cookie, and the CSRF token that goes with it.

The cookie holds a random session id, a random CSRF token, an expiry, while an account
is being connected the pending connection, and a message for the next page (a "flash":
shown once, then dropped from the cookie, so a reload never shows it again). It is
encrypted with the runtime's `SecretBox` (Fernet: encrypted and authenticated), so it
reveals nothing and cannot be forged. The
session itself lives server-side (store/console_sessions.py, which keeps only a hash of the
id) and every request looks it up: signing out, revoking the user or rotating the user's or
the organization's secret ends it, and a copied cookie then opens nothing.

The cookie is HttpOnly, SameSite=Strict, limited to `/ui`, and Secure when the request
came over https. A POST form carries the CSRF token in a hidden field; it is compared in
constant time with the session's.
"""

from __future__ import annotations

import hmac
import secrets
import time
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from relaybox.crypto import SecretBox

COOKIE = "relaybox_session"
SIGNIN_COOKIE = "relaybox_signin"
PATH = "/ui"
LIFETIME = 12 * 3600
# A connection started in the console must come back from the provider within this time.
PENDING_LIFETIME = 15 * 60
CSRF_FIELD = "csrf"
MAX_FLASH = 300


@dataclass(frozen=True)
class Session:
    # The server-side session's id (never stored: store/console_sessions.py keeps its hash).
    sid: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    expires: float = field(default_factory=lambda: time.time() + LIFETIME)
    # The connection waiting for the provider's redirect: its element, the form's values
    # and the OAuth `state`.
    pending: dict[str, Any] | None = None
    # What the next page tells the user once (the outcome of the action that led to it).
    flash: str | None = None

    @property
    def expires_at(self) -> datetime:
        return datetime.fromtimestamp(self.expires, UTC)

    def with_pending(self, pending: dict[str, Any] | None) -> Session:
        return replace(self, pending=pending)

    def with_flash(self, flash: str | None) -> Session:
        return replace(self, flash=flash[:MAX_FLASH] if flash else None)

    def pending_for(self, state: str) -> dict[str, Any] | None:
        """The pending connection `state` names, if it is this session's and still fresh."""
        pending = self.pending
        if not pending or not isinstance(pending.get("state"), str):
            return None
        if not hmac.compare_digest(pending["state"].encode(), state.encode()):
            return None
        if float(pending.get("expires", 0)) < time.time():
            return None
        return pending

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), str(token).encode())


def new_pending(values: dict[str, Any]) -> dict[str, Any]:
    return {**values, "state": secrets.token_urlsafe(24), "expires": time.time() + PENDING_LIFETIME}


def read(request: Request, box: SecretBox) -> Session | None:
    """The request's session, or None when absent, tampered with or expired."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 8192:
        return None
    try:
        data = box.decrypt_json(token)
        session = Session(
            sid=str(data["sid"]),
            csrf=str(data["csrf"]),
            expires=float(data["expires"]),
            pending=data.get("pending") if isinstance(data.get("pending"), dict) else None,
            flash=data.get("flash") if isinstance(data.get("flash"), str) else None,
        )
    except (ValueError, KeyError, TypeError):
        return None
    if session.expires < time.time():
        return None
    return session


def write(response: Response, box: SecretBox, session: Session, *, secure: bool) -> None:
    value = box.encrypt_json(
        {
            "sid": session.sid,
            "csrf": session.csrf,
            "expires": session.expires,
            "pending": session.pending,
            "flash": session.flash,
        }
    )
    response.set_cookie(
        COOKIE,
        value,
        max_age=max(0, int(session.expires - time.time())),
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def clear(response: Response, *, secure: bool) -> None:
    response.delete_cookie(COOKIE, path=PATH, httponly=True, samesite="strict", secure=secure)


def signin_token(request: Request) -> str:
    """The sign-in form's CSRF token: kept in its own cookie until the sign-in succeeds."""
    current = request.cookies.get(SIGNIN_COOKIE)
    if current and 20 <= len(current) <= 100:
        return current
    return secrets.token_urlsafe(32)


def set_signin_token(response: Response, token: str, *, secure: bool) -> None:
    response.set_cookie(
        SIGNIN_COOKIE,
        token,
        max_age=3600,
        path=PATH,
        httponly=True,
        samesite="strict",
        secure=secure,
    )


def signin_ok(request: Request, token: str | None) -> bool:
    expected = request.cookies.get(SIGNIN_COOKIE)
    return bool(expected and token) and hmac.compare_digest(
        str(expected).encode(), str(token).encode()
    )
