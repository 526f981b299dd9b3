"""How relaybox serves its sandboxes (`serve --sandbox`, `sandbox`): as a development tool.

Both are served together (`both`): the Dropbox sandbox at the root of the sandbox's URL, the
Google Drive sandbox (`relaybox/gdrive_sandbox`) under `/gdrive` of it, so
`relaybox sandbox` answers Dropbox at `http://127.0.0.1:8010` and Google at
`http://127.0.0.1:8010/gdrive`, and `serve --sandbox` at `/sandbox` and `/sandbox/gdrive`.
Everything below holds for both.

The sandbox's control API creates accounts, uploads files and makes the server fetch a
webhook URI and keep its answer, so:

- it is served on loopback only, unless deliberately public (`serve --sandbox-public`,
  `sandbox --public`); public, its control API needs a token: RELAYBOX_SANDBOX_TOKEN, or
  one generated and printed at start (set, the token is required on loopback too);
- it answers for loopback host names, the address it listens on and the names given
  (relaybox's public URL under `serve`), nothing else (`sandbox/access.py`);
- its webhooks go through the callbacks' SSRF guard (`services/callbacks.py`): loopback
  targets only when the sandbox is itself on loopback, other private ones only with
  RELAYBOX_ALLOW_PRIVATE_CALLBACKS=true set explicitly;
- request bodies are bounded: `SANDBOX_UPLOAD_LIMIT` for content uploads, `MAX_BODY`
  (as the rest of relaybox) for everything else.
"""

from __future__ import annotations

import pathlib
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import httpx
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.types import ASGIApp, Scope

from relaybox.api.limits import MAX_BODY, BodyLimit
from relaybox.config import Settings
from relaybox.core.netguard import blocked_reason
from relaybox.httpclients import transport_with
from relaybox.sandbox.access import LOOPBACK_HOSTS, Access, AccessPolicy, route_path
from relaybox.services.callbacks import GuardedBackend

GDRIVE = "/gdrive"
"""Where the Google Drive sandbox is served, below the Dropbox sandbox's root."""

SANDBOX_UPLOAD_LIMIT = 150 * 1024 * 1024 + 1024 * 1024
"""Content uploads: Dropbox's 150 MiB for `/2/files/upload`, and 1 MiB for what wraps it
(a form's fields), so an upload just over 150 MiB still gets Dropbox's own error."""


class SandboxRefused(Exception):
    """The sandbox may not be served as asked; the message says why and what to do."""


@dataclass(frozen=True)
class Exposure:
    """Where the sandbox is served and what that allows."""

    loopback: bool
    access: AccessPolicy
    token_generated: bool
    allow_private_webhooks: bool


def is_loopback(host: str) -> bool:
    """`localhost` or a loopback address (not a wildcard such as 0.0.0.0)."""
    name = _host_name(host)
    if name == "localhost" or name.endswith(".localhost"):
        return True
    try:
        return blocked_reason(name) == "loopback"
    except ValueError:
        return False


def _host_name(host: str) -> str:
    return host.strip().strip("[]").rstrip(".").lower()


def exposure(
    host: str,
    *,
    public: bool,
    settings: Settings,
    flag: str,
    names: Iterable[str] = (),
) -> Exposure:
    """The exposure of a sandbox listening on `host`, or `SandboxRefused`.

    `names` are further host names clients use for it; `flag` is the option that makes
    it public (named in the refusal)."""
    names = [_host_name(name) for name in names if name]
    loopback = is_loopback(host) and all(is_loopback(name) for name in names)
    if not loopback and not public:
        beyond = [name for name in (host, *names) if not is_loopback(name)]
        raise SandboxRefused(
            f"the sandbox would be reachable beyond this machine (at {', '.join(beyond)}): "
            "it is a development tool whose control API creates accounts, uploads files "
            "and fetches URLs. Serve it on 127.0.0.1, or pass "
            f"{flag} to expose it on purpose (its control API then needs a token)."
        )
    hosts = set(LOOPBACK_HOSTS) | set(names)
    if _host_name(host) not in ("0.0.0.0", "::", ""):
        hosts.add(_host_name(host))
    token = settings.sandbox_token or None
    generated = token is None and public
    if generated:
        token = secrets.token_urlsafe(32)
    explicit = "allow_private_callbacks" in settings.model_fields_set
    return Exposure(
        loopback=loopback,
        access=AccessPolicy(hosts=frozenset(hosts), token=token),
        token_generated=generated,
        allow_private_webhooks=explicit and settings.allow_private_callbacks,
    )


def url_host(url: str) -> str:
    return urllib.parse.urlsplit(url).hostname or ""


def allow_private_callbacks(settings: Settings, exposed: Exposure) -> bool:
    """`allow_private_callbacks` under `--sandbox`: true on loopback (the demo's receiver
    is there) unless RELAYBOX_ALLOW_PRIVATE_CALLBACKS is set; explicit settings win."""
    if "allow_private_callbacks" in settings.model_fields_set or not exposed.loopback:
        return settings.allow_private_callbacks
    return True


def body_limit(scope: Scope) -> int:
    """A sandbox request's body limit: content uploads are large, the rest is JSON."""
    path, method = route_path(scope), scope.get("method")
    uploads = path in ("/2/files/upload", "/_sandbox/ui/upload") or (
        method == "PUT" and path.startswith("/_sandbox/accounts/") and path.endswith("/files")
    )
    return SANDBOX_UPLOAD_LIMIT if uploads else MAX_BODY


def webhook_transport(exposed: Exposure) -> httpx.AsyncBaseTransport:
    """The sandbox's webhook connections, through the callbacks' SSRF guard."""
    guard = GuardedBackend(
        allow_private=exposed.allow_private_webhooks, allow_loopback=exposed.loopback
    )
    # No idle keep-alive, as the senders' own client (sandbox_kit/sender.py).
    limits = httpx.Limits(max_keepalive_connections=0)
    return transport_with(guard, httpx.create_ssl_context(), limits)


def secure(sandbox_app: Starlette, exposed: Exposure) -> ASGIApp:
    """`sandbox_app` (made with `exposed.access`) with a guarded sender and body limits."""
    sandbox_app.state.sandbox.webhooks.transport = webhook_transport(exposed)
    return BodyLimit(sandbox_app, MAX_BODY, limit_for=body_limit)


def gdrive_state_file(state_file: pathlib.Path | None) -> pathlib.Path | None:
    """The Google Drive sandbox's state, beside the Dropbox one's: `sandbox.json` ->
    `sandbox-gdrive.json`."""
    if state_file is None:
        return None
    return state_file.with_name(f"{state_file.stem}-gdrive{state_file.suffix or '.json'}")


def both(dropbox_app: Starlette, gdrive_app: Starlette, exposed: Exposure) -> Starlette:
    """The Dropbox sandbox (made with `exposed.access`) at the root and the Google Drive
    sandbox under `GDRIVE`, each with the access policy, a guarded sender and body limits.

    Its lifespan starts and closes both (standalone, `relaybox sandbox`); mounted, the
    parent does (`relaybox serve --sandbox`)."""
    gdrive_app.state.sandbox.push.transport = webhook_transport(exposed)
    google = BodyLimit(Access(gdrive_app, exposed.access), MAX_BODY)
    dropbox_sandbox, gdrive_sandbox = dropbox_app.state.sandbox, gdrive_app.state.sandbox

    @asynccontextmanager
    async def lifespan(_: Starlette) -> AsyncIterator[None]:
        dropbox_sandbox.start()
        gdrive_sandbox.start()
        try:
            yield
        finally:
            await gdrive_sandbox.aclose()
            await dropbox_sandbox.aclose()

    routes = [Mount(GDRIVE, app=google), Mount("", app=secure(dropbox_app, exposed))]
    combined = Starlette(routes=routes, lifespan=lifespan)
    combined.state.sandbox = dropbox_sandbox
    combined.state.gdrive = gdrive_sandbox
    return combined


def gdrive_lines(exposed: Exposure, base: str) -> str:
    """What to print at start about the Google Drive sandbox served at `base`."""
    token = exposed.access.token
    page = f"{base}/_sandbox/ui" + (f"?token={token}" if token else "")
    return (
        f"  Google Drive: {base}  (API {base}/drive/v3/, token URI {base}/token, "
        f"consent {base}/o/oauth2/v2/auth)\n"
        f"    files page: {page}\n"
    )


def token_lines(exposed: Exposure, base: str) -> str:
    """What to print at start about the control token (nothing without one)."""
    token = exposed.access.token
    if token is None:
        return ""
    origin = "generated" if exposed.token_generated else "RELAYBOX_SANDBOX_TOKEN"
    return (
        f"  control API token ({origin}): {token}\n"
        f"    send it as `Authorization: Bearer <token>` to {base}/_sandbox/...\n"
        f"  files page: {base}/_sandbox/ui?token={token}\n"
    )
