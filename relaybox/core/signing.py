"""Signatures: checking Dropbox's, making ours.

Incoming: Dropbox signs each webhook POST with ``X-Dropbox-Signature``, the
lowercase hex HMAC-SHA256 of the raw body keyed with the app secret.

Outgoing (SPEC section 4): every delivery carries ``Elements-Webhook-Id``;
when the instance has a signature key it also carries

* ``Elements-Webhook-Signature: sha256=<base64(HMAC-SHA256(key, body))>``,
  the Open Connectors scheme, keyed with the key's UTF-8 bytes;
* the Standard Webhooks headers ``webhook-id``, ``webhook-timestamp`` and
  ``webhook-signature: v1,<base64(HMAC-SHA256(secret, "id.ts.body"))>``,
  where the secret is the key's UTF-8 bytes or, for a ``whsec_`` key, the
  base64-decoded rest, so a receiver using the ``standardwebhooks`` package
  verifies it with the key unchanged.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re

from relaybox.core.errors import InvalidInput

__all__ = [
    "SIGNATURE_KEY_FIELD",
    "WHSEC_PREFIX",
    "delivery_headers",
    "dropbox_signature",
    "elements_signature",
    "standard_webhook_headers",
    "standard_webhook_secret",
    "verify_dropbox_signature",
    "well_formed_dropbox_signature",
]

WHSEC_PREFIX = "whsec_"
SIGNATURE_KEY_FIELD = "event.notification.signature.key"


def _hmac_sha256(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()


def dropbox_signature(app_secret: str, body: bytes) -> str:
    """The ``X-Dropbox-Signature`` Dropbox sends for `body`: lowercase hex HMAC-SHA256."""
    return hmac.new(app_secret.encode("utf-8"), body, hashlib.sha256).hexdigest()


_HEX_SHA256 = re.compile(r"\s*[0-9a-fA-F]{64}\s*")


def well_formed_dropbox_signature(signature: str) -> bool:
    """Whether `signature` looks like one (64 hex digits, whitespace around tolerated)."""
    return _HEX_SHA256.fullmatch(signature) is not None


def verify_dropbox_signature(app_secret: str, body: bytes, signature: str) -> bool:
    """Whether `signature` is Dropbox's signature of `body` under `app_secret`.

    Compared in constant time. Surrounding whitespace and upper-case hex are
    tolerated; anything else that is not the exact digest is refused.
    """
    expected = dropbox_signature(app_secret, body).encode("ascii")
    try:
        given = signature.strip().lower().encode("ascii")
    except UnicodeEncodeError:
        return False
    return hmac.compare_digest(expected, given)


def elements_signature(key: str, body: bytes) -> str:
    """The ``Elements-Webhook-Signature`` value: ``sha256=`` + base64 HMAC-SHA256."""
    digest = _hmac_sha256(key.encode("utf-8"), body)
    return "sha256=" + base64.b64encode(digest).decode("ascii")


def standard_webhook_secret(key: str) -> bytes:
    """The HMAC secret Standard Webhooks signing uses for the signature key `key`.

    A key that starts with ``whsec_`` is a Standard Webhooks secret: the rest
    is base64 (padding optional, as the ``standardwebhooks`` package accepts).
    Any other key is used as its UTF-8 bytes. Raises `InvalidInput` for an
    empty key or a ``whsec_`` key whose rest is not base64, so configuration
    can call this to validate a key before storing it.
    """
    if not key:
        raise InvalidInput("signature key must not be empty", field=SIGNATURE_KEY_FIELD)
    if not key.startswith(WHSEC_PREFIX):
        return key.encode("utf-8")
    rest = key[len(WHSEC_PREFIX) :]
    try:
        secret = base64.b64decode(rest + "=" * (-len(rest) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInput(
            "signature key starts with 'whsec_' but the rest is not valid base64",
            field=SIGNATURE_KEY_FIELD,
        ) from None
    if not secret:
        raise InvalidInput(
            "signature key 'whsec_' has no secret after the prefix", field=SIGNATURE_KEY_FIELD
        )
    return secret


def standard_webhook_headers(key: str, msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for `body` sent as message `msg_id` at `timestamp`.

    `timestamp` is in Unix seconds and must be the value sent in the header.
    """
    secret = standard_webhook_secret(key)
    signed = f"{msg_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(_hmac_sha256(secret, signed)).decode("ascii")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{signature}",
    }


def delivery_headers(
    *,
    notification_id: str,
    body: bytes,
    signature_key: str | None,
    timestamp: int,
    user_agent: str,
) -> dict[str, str]:
    """Every header of one delivery POST (SPEC section 4).

    `body` is the exact bytes sent; `timestamp` is Unix seconds (the moment
    of this attempt); `user_agent` is the whole value, e.g. ``relaybox/0.1.0``.
    An empty or absent `signature_key` means the delivery is not signed.
    """
    headers = {
        "Content-Type": "application/json",
        "User-Agent": user_agent,
        "Elements-Webhook-Id": notification_id,
    }
    if signature_key:
        headers["Elements-Webhook-Signature"] = elements_signature(signature_key, body)
        headers.update(standard_webhook_headers(signature_key, notification_id, timestamp, body))
    return headers
