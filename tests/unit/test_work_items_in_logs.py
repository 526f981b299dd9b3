"""A failed work item is logged by what it is, never with its secrets or body."""

from __future__ import annotations

from relaybox.pipeline import changes, delivery

SECRET = "gAAAAAsealed-secrets"
BODY = '{"message": {"events": ["private path"]}}'


def test_a_claimed_delivery_names_its_notification_and_instance_only() -> None:
    item = delivery.Claimed(7, "lease", "n-123", BODY, 2, 42, {"k": "v"}, SECRET)
    assert str(item) == "notification n-123 of instance 42"
    assert SECRET not in f"{item}" and "private path" not in f"{item}"


def test_a_claimed_pass_names_its_instance_only() -> None:
    item = changes.Claimed(
        42, "dropbox", "lease", "cursor", 1, {"raw": 1}, SECRET, {"k": "v"}, None
    )
    assert str(item) == "pass of instance 42"
    assert SECRET not in f"{item}"
