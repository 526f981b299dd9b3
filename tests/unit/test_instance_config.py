"""An instance's configuration: parsing, defaults, secrets and what the API shows."""

from __future__ import annotations

import pytest

from relaybox.core.errors import InvalidInput
from relaybox.core.instance_config import (
    MASK,
    MAX_KEYS,
    config_id,
    config_items,
    parse_config,
)

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
        ({**BASE, "k" * 201: "v"}, "configuration." + "k" * 200),
        ({**BASE, "": "v"}, "configuration."),
        ({**BASE, "my.key": "v" * 4097}, "my.key"),
        ({**BASE, "my.key": {"a": "v" * 4096}}, "my.key"),
        ({**BASE, "my.key": float("nan")}, "my.key"),
        ({**BASE, **{f"k{i}": "v" for i in range(MAX_KEYS)}}, "configuration"),
        ({"authentication.type": "apiKey", "oauth.api.secret": "s"}, "dropbox.access_token"),
        ({**BASE, "oauth.api.key": "x" * 5000}, "oauth.api.key"),
    ],
)
def test_bad_values_name_their_field(raw: dict[str, object], field: str) -> None:
    with pytest.raises(InvalidInput) as raised:
        parse_config(raw)
    assert raised.value.field == field


def test_other_keys_are_kept_and_echoed() -> None:
    """SPEC 9: keys relaybox does not act on are stored and echoed back, never refused."""
    raw = {**BASE, "filter.response.nulls": "true", "event.poller.configuration": {"a": 1}}
    config = parse_config(raw)
    assert config.public()["filter.response.nulls"] == "true"
    assert config.public()["event.poller.configuration"] == {"a": 1}
    reloaded = parse_config(config.stored(), require_complete=False)
    assert reloaded.extra == {k: v for k, v in raw.items() if k not in BASE}
    removed = parse_config({"filter.response.nulls": None}, base=config)
    assert "filter.response.nulls" not in removed.public()


def test_app_key_is_masked_but_stored_and_a_mask_sent_back_changes_nothing() -> None:
    config = parse_config(BASE)
    assert config.public()["oauth.api.key"] == MASK
    assert config.stored()["oauth.api.key"] == "key"
    again = parse_config(config.public(), base=config)
    assert again.app_key == "key" and again.app_secret == "secret"


def test_configuration_items_have_stable_ids_and_masked_secrets() -> None:
    items = {item["key"]: item for item in config_items(parse_config({**BASE, "x.y": True}))}
    assert items["oauth.api.key"]["propertyValue"] == MASK
    assert items["oauth.api.secret"]["propertyValue"] == MASK
    assert items["event.notification.enabled"]["propertyValue"] == "false"
    assert items["event.notification.callback.url"]["propertyValue"] is None
    assert items["x.y"]["propertyValue"] == "true"
    assert all(item["id"] == config_id(key) for key, item in items.items())
    assert config_id("event.notification.enabled") == 0x6A83A2E1E943  # pinned: ids never change
    assert len({item["id"] for item in items.values()}) == len(items)


def test_events_may_wait_for_their_callback_url_one_key_at_a_time() -> None:
    config = parse_config(
        {**BASE, "event.notification.enabled": "true"}, events_need_callback=False
    )
    assert config.events_enabled and not config.events_on
    later = parse_config({"event.notification.callback.url": "https://a.example/x"}, base=config)
    assert later.events_on
