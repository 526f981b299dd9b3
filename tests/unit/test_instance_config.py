"""An instance's configuration: parsing, defaults, secrets and what the API shows."""

from __future__ import annotations

import pytest

from relaybox.core.errors import InvalidInput
from relaybox.core.instance_config import MASK, parse_config

BASE = {"oauth.api.key": "key", "oauth.api.secret": "secret"}


def test_secrets_are_kept_apart_and_masked() -> None:
    config = parse_config({**BASE, "event.notification.signature.key": "sig"})
    assert config.secrets() == {
        "oauth.api.secret": "secret",
        "event.notification.signature.key": "sig",
    }
    shown = config.public()
    assert shown["oauth.api.secret"] == MASK and shown["event.notification.signature.key"] == MASK
    assert "oauth.api.secret" not in config.stored()
    assert "secret" not in str(config.stored()) and "sig" not in str(config.stored())


def test_string_booleans_and_vendor_synonyms() -> None:
    config = parse_config(
        {
            **BASE,
            "event.notification.enabled": "true",
            "event.notification.callback.url": "https://a.example/x",
            "event.vendor.type": "webhook",
        }
    )
    assert config.events_enabled is True and config.vendor_type == "webhooks"


def test_refresh_interval_survives_a_switch_to_polling() -> None:
    created = parse_config({**BASE, "event.poller.refresh_interval": "5"})
    assert created.vendor_type == "webhooks"
    reloaded = parse_config(created.stored(), require_complete=False)
    switched = parse_config({"event.vendor.type": "polling"}, base=reloaded, require_complete=False)
    assert switched.poll_interval_minutes == 5
    assert switched.public()["event.poller.refresh_interval"] == "5"


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ({"oauth.api.key": "k"}, "oauth.api.secret"),
        ({**BASE, "event.notification.enabled": True}, "event.notification.callback.url"),
        ({**BASE, "event.poller.refresh_interval": "0"}, "event.poller.refresh_interval"),
        ({**BASE, "event.poller.refresh_interval": True}, "event.poller.refresh_interval"),
        ({**BASE, "unknown.key": 1}, "configuration.unknown.key"),
        ({"authentication.type": "apiKey", "oauth.api.secret": "s"}, "dropbox.access_token"),
        ({**BASE, "oauth.api.key": "x" * 5000}, "oauth.api.key"),
    ],
)
def test_bad_values_name_their_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_config(raw)
    assert raised.value.field == field
