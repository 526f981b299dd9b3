"""`/elements/api-v2/events/{elementKey}`: the URL providers send their webhooks to.

GET echoes the verification challenge. POST verifies the signature against the app secrets
of the element's instances BEFORE anything is stored (services/webhook_secrets.py), stores
the notification and asks for a change pass on every matching instance in one transaction
shared with the webhooks that arrive meanwhile (store/inbox.py), and answers 200 once that
is committed: the fetching happens afterwards, in the workers.
"""

from __future__ import annotations

import functools
import json
import logging
from typing import Any

from fastapi import APIRouter, Query, Request, Response

from relaybox.api.deps import runtime_of
from relaybox.api.errors import ApiError
from relaybox.connectors.base import WebhookVerifier
from relaybox.connectors.dropbox import DropboxWebhooks
from relaybox.core.errors import InvalidInput
from relaybox.metrics import WEBHOOKS
from relaybox.store.inbox import Received

log = logging.getLogger(__name__)

router = APIRouter(prefix="/elements/api-v2/events", tags=["receiver"])

VERIFIERS: dict[str, WebhookVerifier] = {"dropbox": DropboxWebhooks()}
MAX_CHALLENGE = 1024
MAX_SIGNATURE = 256


def verifier_for(element_key: str) -> WebhookVerifier:
    verifier = VERIFIERS.get(element_key)
    if verifier is None:
        raise ApiError(404, f"no element {element_key!r}")
    return verifier


@router.get("/{element_key}")
async def challenge(
    element_key: str, challenge: str | None = Query(default=None, max_length=MAX_CHALLENGE)
) -> Response:
    verifier_for(element_key)
    if challenge is None:
        raise ApiError(400, "challenge: query parameter is required")
    return Response(
        content=challenge,
        headers={"Content-Type": "text/plain", "X-Content-Type-Options": "nosniff"},
    )


async def receive(request: Request) -> Response:
    """POST: a provider notification. A plain Starlette endpoint, not a FastAPI one: this
    is the hot path (every webhook of every account), and it needs neither dependency
    injection nor validation models; errors still become the API's JSON errors."""
    element_key = str(request.path_params["element_key"])
    verifier = verifier_for(element_key)
    runtime = runtime_of(request)
    body = await request.body()
    signature = request.headers.get(verifier.signature_header, "")
    notification = None
    signers: list[str] = []
    if signature and len(signature) <= MAX_SIGNATURE:

        def verify(app_secret: str) -> bool:
            return verifier.verify(app_secret, body, signature)

        signers = await runtime.webhook_secrets.signers(element_key, verify)
        notification = _parse(body)
        if not signers:
            named = _named_accounts(verifier, notification)
            signers = await runtime.webhook_secrets.signers_among(element_key, named, verify)
    if not signers:
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
    return Response(status_code=200)


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


# A plain route does not take the router's prefix: the full path is given.
router.add_route(
    f"{router.prefix}/{{element_key}}", receive, methods=["POST"], include_in_schema=False
)
