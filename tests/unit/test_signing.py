"""Signatures: the Dropbox vector, the Elements scheme, and Standard Webhooks via its package."""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from relaybox.core.errors import InvalidInput
from relaybox.core.signing import (
    SIGNATURE_KEY_FIELD,
    delivery_headers,
    dropbox_signature,
    elements_signature,
    standard_webhook_headers,
    standard_webhook_secret,
    verify_dropbox_signature,
)

DROPBOX_SECRET = "the_secret"
DROPBOX_BODY = b'{"delta": {"users": [12345]}}'
DROPBOX_SIGNATURE = "0a8c16b085420b960dc78664279fe09e936a2a01b1f91064869d9e77dfd64529"

BODY = b'{"id": "n-1", "message": {"events": [{"eventType": "CREATED", "path": "/caf\xc3\xa9"}]}}'
WHSEC_KEY = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()


def test_dropbox_signature_matches_the_verified_vector() -> None:
    assert dropbox_signature(DROPBOX_SECRET, DROPBOX_BODY) == DROPBOX_SIGNATURE


def test_verify_dropbox_signature_accepts_the_vector() -> None:
    assert verify_dropbox_signature(DROPBOX_SECRET, DROPBOX_BODY, DROPBOX_SIGNATURE)


def test_verify_dropbox_signature_tolerates_case_and_whitespace() -> None:
    assert verify_dropbox_signature(DROPBOX_SECRET, DROPBOX_BODY, f" {DROPBOX_SIGNATURE.upper()}\n")


@pytest.mark.parametrize(
    ("secret", "body", "signature"),
    [
        ("other_secret", DROPBOX_BODY, DROPBOX_SIGNATURE),
        (DROPBOX_SECRET, DROPBOX_BODY + b" ", DROPBOX_SIGNATURE),
        (DROPBOX_SECRET, DROPBOX_BODY, DROPBOX_SIGNATURE[:-1]),
        (DROPBOX_SECRET, DROPBOX_BODY, DROPBOX_SIGNATURE[:-1] + "0"),
        (DROPBOX_SECRET, DROPBOX_BODY, ""),
        (DROPBOX_SECRET, DROPBOX_BODY, "sha256=" + DROPBOX_SIGNATURE),
        (DROPBOX_SECRET, DROPBOX_BODY, "é" * 64),
    ],
)
def test_verify_dropbox_signature_refuses_mismatches(
    secret: str, body: bytes, signature: str
) -> None:
    assert not verify_dropbox_signature(secret, body, signature)


def test_elements_signature_matches_an_independent_computation() -> None:
    key = "my signature key"
    digest = hmac.new(key.encode(), BODY, hashlib.sha256).digest()
    assert elements_signature(key, BODY) == "sha256=" + base64.b64encode(digest).decode()


def test_elements_signature_uses_the_whsec_key_as_plain_bytes() -> None:
    digest = hmac.new(WHSEC_KEY.encode(), BODY, hashlib.sha256).digest()
    assert elements_signature(WHSEC_KEY, BODY) == "sha256=" + base64.b64encode(digest).decode()


def test_elements_signature_is_base64_not_hex() -> None:
    value = elements_signature("k", b"{}")
    assert value.startswith("sha256=")
    assert len(base64.b64decode(value.removeprefix("sha256="), validate=True)) == 32


def test_standard_webhook_secret_of_a_plain_key_is_its_utf8_bytes() -> None:
    assert standard_webhook_secret("clé") == "clé".encode()


def test_standard_webhook_secret_of_a_whsec_key_is_the_decoded_rest() -> None:
    assert standard_webhook_secret(WHSEC_KEY) == b"0123456789abcdef0123456789abcdef"


def test_standard_webhook_secret_accepts_unpadded_base64() -> None:
    assert standard_webhook_secret("whsec_" + base64.b64encode(b"abcd").decode().rstrip("=")) == (
        b"abcd"
    )


@pytest.mark.parametrize("key", ["", "whsec_", "whsec_not base64!", "whsec_abcde"])
def test_standard_webhook_secret_refuses_unusable_keys(key: str) -> None:
    with pytest.raises(InvalidInput) as info:
        standard_webhook_secret(key)
    assert info.value.field == SIGNATURE_KEY_FIELD
    assert isinstance(info.value, ValueError)


def _receiver_for(key: str) -> Webhook:
    """A Standard Webhooks receiver configured the way a user would for `key`."""
    if key.startswith("whsec_"):
        return Webhook(key)
    return Webhook("whsec_" + base64.b64encode(key.encode()).decode())


@pytest.mark.parametrize("key", ["plain-key", "clé avec espaces", WHSEC_KEY])
def test_standard_webhook_headers_verify_with_the_standardwebhooks_package(key: str) -> None:
    timestamp = int(time.time())
    headers = standard_webhook_headers(key, "msg_2b4", timestamp, BODY)
    assert headers["webhook-id"] == "msg_2b4"
    assert headers["webhook-timestamp"] == str(timestamp)
    assert headers["webhook-signature"].startswith("v1,")
    assert _receiver_for(key).verify(BODY, headers) is not None


@pytest.mark.parametrize("key", ["plain-key", WHSEC_KEY])
def test_standard_webhook_headers_fail_on_a_tampered_body(key: str) -> None:
    headers = standard_webhook_headers(key, "msg_2b4", int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        _receiver_for(key).verify(BODY.replace(b"CREATED", b"DELETED"), headers)


def test_standard_webhook_headers_fail_under_another_key() -> None:
    headers = standard_webhook_headers("plain-key", "msg_2b4", int(time.time()), BODY)
    with pytest.raises(WebhookVerificationError):
        _receiver_for("other-key").verify(BODY, headers)


def test_standard_webhook_signature_covers_id_and_timestamp() -> None:
    timestamp = int(time.time())
    headers = standard_webhook_headers("plain-key", "msg_1", timestamp, BODY)
    other = standard_webhook_headers("plain-key", "msg_1", timestamp + 1, BODY)
    assert headers["webhook-signature"] != other["webhook-signature"]
    forged = {**headers, "webhook-id": "msg_2"}
    with pytest.raises(WebhookVerificationError):
        _receiver_for("plain-key").verify(BODY, forged)


def test_delivery_headers_without_a_key_are_unsigned() -> None:
    headers = delivery_headers(
        notification_id="n-1",
        body=BODY,
        signature_key=None,
        timestamp=1_700_000_000,
        user_agent="relaybox/0.1.0",
    )
    assert headers == {
        "Content-Type": "application/json",
        "User-Agent": "relaybox/0.1.0",
        "Elements-Webhook-Id": "n-1",
    }


def test_delivery_headers_with_an_empty_key_are_unsigned() -> None:
    headers = delivery_headers(
        notification_id="n-1", body=BODY, signature_key="", timestamp=1, user_agent="ua"
    )
    assert set(headers) == {"Content-Type", "User-Agent", "Elements-Webhook-Id"}


def test_delivery_headers_with_a_key_carry_both_schemes() -> None:
    timestamp = int(time.time())
    headers = delivery_headers(
        notification_id="n-1",
        body=BODY,
        signature_key="secret-key",
        timestamp=timestamp,
        user_agent="relaybox/0.1.0",
    )
    assert headers["Content-Type"] == "application/json"
    assert headers["User-Agent"] == "relaybox/0.1.0"
    assert headers["Elements-Webhook-Id"] == "n-1"
    assert headers["Elements-Webhook-Signature"] == elements_signature("secret-key", BODY)
    assert headers["webhook-id"] == "n-1"
    assert headers["webhook-timestamp"] == str(timestamp)
    assert _receiver_for("secret-key").verify(BODY, headers) is not None
