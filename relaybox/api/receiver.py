"""`/elements/api-v2/events/{elementKey}`: the URL providers send their webhooks to.

GET echoes the verification challenge. POST verifies the notification BEFORE anything is
stored: a Dropbox webhook's signature against the app secrets of the element's instances
(services/webhook_secrets.py), a Google Drive channel's token against the one relaybox made
for that channel (pipeline/channels.py). It then stores the notification and asks for a
change pass on every matching instance in one transaction shared with the webhooks that
arrive meanwhile (store/inbox.py), and answers 200 once that is committed: the fetching
happens afterwards, in the workers.
"""

from __future__ import annotations

import functools
import hmac
import json
import logging
from collections.abc import Mapping
from typing import Any

from fastapi import APIRouter, Path, Query, Response
from starlette.types import Receive, Scope, Send

from relaybox.api.errors import ApiError, error_body, input_message
from relaybox.api.limits import MAX_BODY
from relaybox.api.models import errors
from relaybox.api.throttle import FailureLimiter
from relaybox.connectors.base import Connector, WebhookVerifier
from relaybox.core.errors import InvalidInput
from relaybox.core.instance_request import ELEMENTS
from relaybox.crypto import secret_hash
from relaybox.metrics import WEBHOOKS
from relaybox.runtime import Runtime
from relaybox.store import channels as stored_channels
from relaybox.store.inbox import Received

log = logging.getLogger(__name__)

router = APIRouter(prefix="/elements/api-v2/events", tags=["receiver"])
PREFIX = f"{router.prefix}/"

MAX_CHALLENGE = 1024
TOO_MANY_FAILURES = "too many webhooks with a bad signature from this address; try again later"


def connector_for(runtime: Runtime, element_key: str) -> Connector:
    connector = runtime.connectors.get(element_key)
    if connector is None or connector.push is None:
        raise ApiError(404, f"no element {element_key!r}")
    return connector


def verifier_for(runtime: Runtime, element_key: str) -> WebhookVerifier:
    verifier = connector_for(runtime, element_key).webhooks
    if verifier is None:
        raise ApiError(404, f"no element {element_key!r} with app webhooks")
    return verifier


ELEMENT_KEY = Path(json_schema_extra={"enum": sorted(ELEMENTS)})


@router.get(
    "/{element_key}",
    response_class=Response,
    responses={
        200: {
            "description": "The challenge, echoed.",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        },
        **errors(400, 404, 500),
    },
)
async def challenge(
    element_key: str = ELEMENT_KEY, challenge: str = Query(max_length=MAX_CHALLENGE)
) -> Response:
    """The provider's verification: the `challenge` is answered as it came."""
    if element_key not in ELEMENTS:
        raise ApiError(404, f"no element {element_key!r}")
    return Response(
        content=challenge,
        headers={"Content-Type": "text/plain", "X-Content-Type-Options": "nosniff"},
    )


async def accept(
    runtime: Runtime,
    failures: FailureLimiter,
    address: str,
    element_key: str,
    body: bytes,
    signature: str,
) -> None:
    """A provider notification: verified, then stored with the passes it asks for before
    this returns (the caller answers 200 only then). Raises ApiError or InvalidInput.

    The signature is checked before the body is parsed, against the element's app secrets
    (one HMAC over the body each; in a thread when that adds up). Only a body none of them
    signed is parsed, to look among the secrets of the instances it names (bounded, and
    not for an address with too many recent failures): 403s are counted per address, and
    a genuinely signed webhook is accepted whatever its address's count.
    """
    verifier = verifier_for(runtime, element_key)
    signers: list[str] = []
    notification = None
    if verifier.well_formed(signature):

        def verify(app_secret: str) -> bool:
            return verifier.verify(app_secret, body, signature)

        secrets = runtime.webhook_secrets
        signers = await secrets.signers(element_key, verify, len(body))
        wait = None if signers else failures.retry_after(address)
        if wait is not None:
            WEBHOOKS.labels(element_key, "throttled").inc()
            raise ApiError(429, TOO_MANY_FAILURES, {"Retry-After": str(wait)})
        notification = _parse(body)
        if not signers:
            named = _named_accounts(verifier, notification)
            signers = await secrets.signers_among(element_key, named, verify, len(body))
    if not signers:
        failures.failed(address)
        WEBHOOKS.labels(element_key, "forbidden").inc()
        raise ApiError(403, f"{verifier.signature_header}: signature does not match")
    if notification is None:
        WEBHOOKS.labels(element_key, "invalid").inc()
        raise ApiError(400, "body: not valid JSON")
    try:
        accounts = verifier.accounts(notification)
    except InvalidInput:
        WEBHOOKS.labels(element_key, "invalid").inc()
        raise
    # Stored, with its pass requests, before the 200 (group commit: store/inbox.py).
    # Polling and longpoll instances fetch on their own schedule, not on webhooks.
    stored = await runtime.inbox.submit(
        Received(
            element_key,
            notification,
            accounts,
            frozenset(signers),
            raw_for=functools.partial(verifier.for_account, notification),
        )
    )
    WEBHOOKS.labels(element_key, "accepted").inc()
    if stored.idle:
        runtime.wakeups.changes.set()


async def accept_channel(
    runtime: Runtime,
    failures: FailureLimiter,
    address: str,
    element_key: str,
    headers: Mapping[str, str],
) -> None:
    """A push channel's notification (Google Drive): its channel's token checked in
    constant time against the hash relaybox keeps, then stored with the pass it asks for
    (as a webhook is). An unknown channel or a wrong token is a 403 and stores nothing;
    the provider's hello on a new channel (`sync`) is answered and not stored."""
    push = connector_for(runtime, element_key).channels
    if push is None:
        raise ApiError(404, f"no element {element_key!r} with push channels")
    message = push.message(headers)
    async with runtime.sessions() as session:
        sender = await stored_channels.sender(session, element_key, message.channel_id)
    genuine = sender is not None and hmac.compare_digest(
        secret_hash(message.token), sender.token_hash
    )
    if sender is None or not genuine:
        wait = failures.retry_after(address)
        if wait is not None:
            WEBHOOKS.labels(element_key, "throttled").inc()
            raise ApiError(429, TOO_MANY_FAILURES, {"Retry-After": str(wait)})
        failures.failed(address)
        WEBHOOKS.labels(element_key, "forbidden").inc()
        raise ApiError(403, "X-Goog-Channel-Token: not this channel's token")
    app_secret = runtime.webhook_secrets.secret_of(sender.secrets_enc)
    if not message.changed or sender.account_id is None or app_secret is None:
        WEBHOOKS.labels(element_key, "accepted").inc()
        return
    stored = await runtime.inbox.submit(
        Received(
            element_key,
            message.raw,
            [sender.account_id],
            frozenset({app_secret}),
            raw_for=lambda _: message.raw,
        )
    )
    WEBHOOKS.labels(element_key, "accepted").inc()
    if stored.idle:
        runtime.wakeups.changes.set()


def element_key_of(scope: Scope) -> str | None:
    """The element key when `scope` is a webhook POST (`POST {PREFIX}{elementKey}`)."""
    if scope["type"] != "http" or scope["method"] != "POST":
        return None
    path: str = scope["path"]
    if not path.startswith(PREFIX):
        return None
    key = path[len(PREFIX) :]
    return key if key and "/" not in key else None


async def receive_webhook(
    runtime: Runtime,
    failures: FailureLimiter,
    element_key: str,
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """POST: the webhook receiver as a bare ASGI handler.

    This is the hot path (every webhook of every account), so it is served in front of
    FastAPI's middleware and routing (app.py), which were a third of its CPU: it needs no
    dependency injection, validation models or sessions. Its answers are the API's: 200
    with no body, or the JSON error of api/errors.py (the 1 MiB body limit included).
    """
    status, headers, content = 200, {}, b""
    try:
        body = await _read_body(scope, receive)
        if body is None:
            return  # the client went away: nothing was stored, nothing to answer
        client = scope.get("client")
        address = str(client[0]) if client else "unknown"
        if connector_for(runtime, element_key).push == "channel":
            given = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
            await accept_channel(runtime, failures, address, element_key, given)
        else:
            signature_header = verifier_for(runtime, element_key).signature_header.lower()
            wanted = signature_header.encode()
            signature = next((v.decode("latin-1") for k, v in scope["headers"] if k == wanted), "")
            await accept(runtime, failures, address, element_key, body, signature)
    except ApiError as error:
        status, headers, content = error.status, error.headers or {}, error_body(error.message)
    except InvalidInput as error:
        status, content = 400, error_body(input_message(error))
    except Exception:
        log.exception("unexpected error receiving a webhook")
        status, content = 500, error_body("internal error")
    raw_headers = [(b"content-length", str(len(content)).encode())]
    if content:
        raw_headers.append((b"content-type", b"application/json"))
    raw_headers += [(k.lower().encode(), v.encode()) for k, v in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": content})


async def _read_body(scope: Scope, receive: Receive) -> bytes | None:
    """The request body, at most MAX_BODY bytes (413 past it); None on a disconnect."""
    for name, value in scope["headers"]:
        if name == b"content-length" and value.isdigit() and int(value) > MAX_BODY:
            raise ApiError(413, f"body: larger than {MAX_BODY} bytes")
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise ApiError(413, f"body: larger than {MAX_BODY} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _parse(body: bytes) -> Any:
    """The JSON body, or None when it is not JSON (decided only after the signature check)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # ValueError covers JSONDecodeError and huge ints
        return None


def _named_accounts(verifier: WebhookVerifier, notification: Any) -> list[str]:
    """The accounts the (not yet verified) body names: only a hint of where to look."""
    try:
        return verifier.accounts(notification)
    except InvalidInput:
        return []
