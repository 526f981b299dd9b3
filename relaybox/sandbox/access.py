"""Who may talk to the sandbox: the Host it answers for, same-origin browsers, a token.

The sandbox is a development tool whose control API (``/_sandbox/...``) creates
accounts, uploads files and makes the server fetch a webhook URI. A page in a
browser on the same machine must not drive it, so every request is checked:

- ``Host`` must name the sandbox (``hosts``): a DNS name an attacker points at
  127.0.0.1 ("DNS rebinding") is refused, whatever the port.
- A state-changing request (not GET, HEAD or OPTIONS) from a browser of another
  origin is refused: an ``Origin`` header that is not the sandbox's own (``null``
  included), or ``Sec-Fetch-Site`` other than ``same-origin`` or ``none``.
- A control POST must be JSON (``application/json``): the content types a page
  can send cross-site without asking (``text/plain``, forms) are refused.
- With a ``token``, control routes need ``Authorization: Bearer <token>``; the
  files page (``/_sandbox/ui``) takes ``?token=`` once and keeps it in a
  ``SameSite=Strict`` cookie valid for that page only.

Refusals are ``{"error": "..."}`` with 403 (host, origin), 401 (token) or 415.
"""

import hmac
import urllib.parse
from dataclasses import dataclass

from starlette.datastructures import URL, Headers, QueryParams
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from relaybox.sandbox.errors import json_response

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
"""Host names a sandbox on loopback answers for."""

CONTROL = "/_sandbox/"
UI = "/_sandbox/ui"
COOKIE = "relaybox_sandbox_token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class AccessPolicy:
    hosts: frozenset[str] = LOOPBACK_HOSTS
    """Lower-case host names and addresses (IPv6 without brackets), ports aside."""
    token: str | None = None
    """Required by the control routes when set."""


def route_path(scope: Scope) -> str:
    """The request path inside this app (without the prefix it is mounted at)."""
    path, root = str(scope.get("path", "")), str(scope.get("root_path", ""))
    return path[len(root) :] if root and path.startswith(root) else path


def _authority(netloc: str) -> tuple[str, int | None] | None:
    """``(host, port)`` of ``host[:port]``, or None when malformed."""
    try:
        parts = urllib.parse.urlsplit("//" + netloc)
        host, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not host or parts.username is not None or parts.path:
        return None
    return host.rstrip("."), port


def _same_origin(origin: str, host: str, port: int | None) -> bool:
    try:
        parts = urllib.parse.urlsplit(origin)
        origin_port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or parts.hostname is None:
        return False
    return parts.hostname.rstrip(".") == host and (port is None or port == origin_port)


def _is_json(content_type: str | None) -> bool:
    media = (content_type or "").split(";")[0].strip().lower()
    return media == "application/json" or (
        media.startswith("application/") and media.endswith("+json")
    )


def _bearer(headers: Headers) -> str | None:
    scheme, _, value = headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else None


def _matches(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


class Access:
    """ASGI middleware applying an :class:`AccessPolicy` to every request."""

    def __init__(self, app: ASGIApp, policy: AccessPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(scope)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, scope: Scope) -> Response | None:
        headers = Headers(scope=scope)
        authority = _authority(headers.get("host", ""))
        if authority is None or authority[0] not in self.policy.hosts:
            return json_response({"error": "host: this sandbox does not answer for it"}, 403)
        method, path = str(scope["method"]), route_path(scope)
        if method not in SAFE_METHODS:
            origin, site = headers.get("origin"), headers.get("sec-fetch-site")
            if (origin is not None and not _same_origin(origin, *authority)) or (
                site is not None and site not in ("same-origin", "none")
            ):
                return json_response({"error": "origin: cross-site requests are refused"}, 403)
        if not path.startswith(CONTROL):
            return None
        ui = path == UI or path.startswith(UI + "/")
        if method == "POST" and not ui and not _is_json(headers.get("content-type")):
            return json_response({"error": "content-type: send application/json"}, 415)
        token = self.policy.token
        if token is None or _matches(_bearer(headers), token):
            return None
        if ui:
            return self._ui_token(scope, headers, token)
        return json_response(
            {"error": "token: send Authorization: Bearer <the sandbox token>"},
            401,
            {"WWW-Authenticate": 'Bearer realm="sandbox"'},
        )

    def _ui_token(self, scope: Scope, headers: Headers, token: str) -> Response | None:
        """The files page: the cookie, or ``?token=`` once (answered with the cookie set)."""
        cookie = {
            name.strip(): value
            for name, _, value in (
                part.partition("=") for part in headers.get("cookie", "").split(";")
            )
        }.get(COOKIE)
        if _matches(cookie, token):
            return None
        url, query = URL(scope=scope), QueryParams(scope.get("query_string", b""))
        if scope["method"] == "GET" and _matches(query.get("token"), token):
            rest = url.remove_query_params("token")
            response = RedirectResponse(rest.path + (f"?{rest.query}" if rest.query else ""), 303)
            response.set_cookie(
                COOKIE,
                token,
                path=str(scope.get("root_path", "")) + UI,
                httponly=True,
                samesite="strict",
                secure=url.scheme == "https",
            )
            return response
        return json_response({"error": "token: open the page with ?token=<the sandbox token>"}, 401)
