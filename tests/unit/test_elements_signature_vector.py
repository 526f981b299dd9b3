"""The anchor's own event-security test vector for ``Elements-Webhook-Signature``.

Source: github.com/cloud-elements/devportal, docs/guides/event-management/security.md
("Hash Verification"): key ``MySecretEventSignatureKey``, payload
``<INSERT_EVENT_NOTIFICATION_RESPONSE_BODY>``, expected header value
``sha256=jHdbRx5EZAsOfTwAPJOGkNUzQMVVdu5VJlxcsk+G6jQ=`` (the same in its Java, Node and
Ruby samples).
"""

from __future__ import annotations

import base64
import hashlib
import hmac

from relaybox.core.signing import elements_signature

KEY = "MySecretEventSignatureKey"
BODY = b"<INSERT_EVENT_NOTIFICATION_RESPONSE_BODY>"
HEADER = "sha256=jHdbRx5EZAsOfTwAPJOGkNUzQMVVdu5VJlxcsk+G6jQ="


def test_signer_matches_the_documented_vector() -> None:
    assert elements_signature(KEY, BODY) == HEADER


def test_the_documented_receiver_recipe_matches_the_vector() -> None:
    """The Node sample: createHmac('sha256', key).update(body).digest('base64'), 'sha256=' + it."""
    digest = hmac.new(KEY.encode(), BODY, hashlib.sha256).digest()
    assert "sha256=" + base64.b64encode(digest).decode() == HEADER
