"""`/elements/api-v2/events/{elementKey}`: the URL providers send their webhooks to.

GET echoes the verification challenge. POST verifies the signature against the app secrets
of the element's instances BEFORE anything is stored, stores the notification and asks for
a change pass on every matching instance in one transaction, and answers 200 at once: the
fetching happens afterwards, in the workers.
"""

from __future__ import annotations

import json
import logging

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy import select

from relaybox.api.deps import runtime_of
from relaybox.api.errors import ApiError
from relaybox.connectors.base import WebhookVerifier
from relaybox.connectors.dropbox import DropboxWebhooks
from relaybox.core.errors import InvalidInput
from relaybox.metrics import WEBHOOKS
from relaybox.runtime import Runtime
from relaybox.store import tables
from relaybox.store.db import transaction
from relaybox.store.passes import request_pass

log = logging.getLogger(__name__)

router = APIRouter(prefix="/elements/api-v2/events", tags=["receiver"])

VERIFIERS: dict[str, WebhookVerifier] = {"dropbox": DropboxWebhooks()}
MAX_CHALLENGE = 1024


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


@router.post("/{element_key}")
async def receive(element_key: str, request: Request) -> Response:
    verifier = verifier_for(element_key)
    runtime = runtime_of(request)
    body = await request.body()
    signature = request.headers.get(verifier.signature_header, "")
    matched = await _matching_instances(runtime, verifier, body, signature)
    if not matched:
        WEBHOOKS.labels(element_key, "forbidden").inc()
        raise ApiError(403, f"{verifier.signature_header}: signature does not match")
    try:
        notification = json.loads(body)
        accounts = set(verifier.accounts(notification))
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        WEBHOOKS.labels(element_key, "invalid").inc()
        raise ApiError(400, "body: not valid JSON") from None
    except InvalidInput:
        WEBHOOKS.labels(element_key, "invalid").inc()
        raise
    # Polling and longpoll instances fetch on their own schedule, not on webhooks.
    targets = [
        instance_id
        for instance_id, (account, source) in matched.items()
        if account in accounts and source == "webhooks"
    ]
    async with transaction(runtime.sessions) as session:
        session.add(
            tables.InboxItem(
                element_key=element_key, body=notification, instance_count=len(targets)
            )
        )
        await request_pass(session, targets, notification)
    WEBHOOKS.labels(element_key, "accepted").inc()
    if targets:
        runtime.wakeups.changes.set()
    return Response(status_code=200)


async def _matching_instances(
    runtime: Runtime, verifier: WebhookVerifier, body: bytes, signature: str
) -> dict[int, tuple[str | None, str]]:
    """The instances (id -> account, event source) whose app secret signed this body."""
    if not signature or len(signature) > 256:
        return {}
    instance = tables.Instance
    async with transaction(runtime.sessions) as session:
        rows = (
            await session.execute(
                select(
                    instance.id, instance.account_id, instance.vendor_type, instance.secrets_enc
                ).where(instance.element_key == verifier.element_key)
            )
        ).all()
    matched: dict[int, tuple[str | None, str]] = {}
    checked: dict[str, bool] = {}
    for instance_id, account_id, vendor_type, secrets_enc in rows:
        app_secret = _app_secret(runtime, secrets_enc)
        if app_secret is None:
            continue
        if app_secret not in checked:
            checked[app_secret] = verifier.verify(app_secret, body, signature)
        if checked[app_secret]:
            matched[instance_id] = (account_id, vendor_type)
    return matched


def _app_secret(runtime: Runtime, secrets_enc: str) -> str | None:
    """The decrypted app secret of one instance, cached by its ciphertext."""
    cache = runtime.app_secrets
    if secrets_enc not in cache:
        if len(cache) > 10_000:
            cache.clear()
        try:
            secret = runtime.box.decrypt_json(secrets_enc).get("oauth.api.secret")
        except ValueError:
            log.error("an instance's secrets cannot be decrypted with the configured key")
            secret = None
        cache[secrets_enc] = str(secret) if secret else None
    return cache[secrets_enc]
