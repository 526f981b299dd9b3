"""The `configuration` object of an instance: parsing, defaults, secrets and masking.

Keys relaybox acts on (`KNOWN_KEYS`) are validated; any other string key (the anchor's
keys common to all elements, `filter.response.nulls`, `event.poller.configuration`, ...,
and a client's own) is kept as given and echoed back, within `MAX_KEYS`, `MAX_KEY_LENGTH`
and `MAX_VALUE_LENGTH` (SPEC section 9).

Pure: every error is an `InvalidInput` naming the configuration key it is about.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from relaybox.core.errors import InvalidInput
from relaybox.core.netguard import check_callback_url
from relaybox.core.signing import standard_webhook_secret

MASK = "********"

# Keys whose values are secrets: stored encrypted, shown masked, never logged.
SECRET_KEYS = frozenset(
    {"oauth.api.secret", "event.notification.signature.key", "dropbox.access_token"}
)
VENDOR_TYPES = {
    "webhooks": "webhooks",
    "webhook": "webhooks",
    "polling": "polling",
    "longpoll": "longpoll",
}
# Shown masked as well (the anchor masks the app key), though kept in the clear.
MASKED_KEYS = SECRET_KEYS | {"oauth.api.key"}
AUTH_TYPES = frozenset({"oauth2", "apiKey"})
KNOWN_KEYS = frozenset(
    {
        "authentication.type",
        "oauth.api.key",
        "oauth.api.secret",
        "oauth.callback.url",
        "dropbox.access_token",
        "event.notification.enabled",
        "event.notification.callback.url",
        "event.notification.signature.key",
        "event.notification.ordered",
        "event.vendor.type",
        "event.poller.refresh_interval",
    }
)
MAX_VALUE_LENGTH = 4096
"""A value's length: a string's characters, any other value's JSON text."""
MAX_KEY_LENGTH = 200
MAX_KEYS = 100
"""Keys in one instance's configuration, relaybox's own and the others together."""
DEFAULT_POLL_MINUTES = 15.0
CREDENTIAL = re.compile(r"[!-~]+")


@dataclass(frozen=True)
class InstanceConfig:
    auth_type: str = "oauth2"
    app_key: str | None = None
    app_secret: str | None = None
    oauth_callback_url: str | None = None
    access_token: str | None = None
    events_enabled: bool = False
    callback_url: str | None = None
    signature_key: str | None = None
    ordered: bool = False
    vendor_type: str = "webhooks"
    poll_interval_minutes: float = DEFAULT_POLL_MINUTES
    # Keys relaybox does not act on, as given (never secrets of relaybox's).
    extra: Mapping[str, Any] = field(default_factory=dict)

    @property
    def events_on(self) -> bool:
        """Events flow once they are enabled and have somewhere to go. Enabling them one key
        at a time (`/configuration/{configId}`) may name the callback URL afterwards."""
        return self.events_enabled and bool(self.callback_url)

    def public(self) -> dict[str, Any]:
        """The configuration as the API shows it (secrets and the app key masked)."""
        return {k: MASK if k in MASKED_KEYS else v for k, v in self.plain().items()}

    def stored(self) -> dict[str, Any]:
        """What is kept in the clear: every value but the secret keys."""
        return {k: v for k, v in self.plain().items() if k not in SECRET_KEYS}

    def plain(self) -> dict[str, Any]:
        """Every value in the clear, secrets included: never shown, never logged."""
        shown: dict[str, Any] = {
            "authentication.type": self.auth_type,
            "event.notification.enabled": self.events_enabled,
            "event.vendor.type": self.vendor_type,
            "event.notification.ordered": self.ordered,
        }
        optional = {
            "oauth.api.key": self.app_key,
            "oauth.api.secret": self.app_secret,
            "oauth.callback.url": self.oauth_callback_url,
            "dropbox.access_token": self.access_token,
            "event.notification.callback.url": self.callback_url,
            "event.notification.signature.key": self.signature_key,
        }
        for key, value in optional.items():
            if value is not None:
                shown[key] = value
        if self.vendor_type == "polling" or self.poll_interval_minutes != DEFAULT_POLL_MINUTES:
            shown["event.poller.refresh_interval"] = _number_text(self.poll_interval_minutes)
        return {**self.extra, **shown}

    def secrets(self) -> dict[str, str]:
        values = {
            "oauth.api.secret": self.app_secret,
            "event.notification.signature.key": self.signature_key,
            "dropbox.access_token": self.access_token,
        }
        return {k: v for k, v in values.items() if v is not None}


def parse_config(
    raw: Any,
    *,
    base: InstanceConfig | None = None,
    require_complete: bool = True,
    events_need_callback: bool = True,
) -> InstanceConfig:
    """Apply the keys of `raw` on top of `base` (a PATCH) or of the defaults (a create).

    `events_need_callback=False` lets events be enabled before the callback URL is named
    (one key at a time); they flow once it is (`InstanceConfig.events_on`).
    """
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise InvalidInput("configuration must be an object", field="configuration")
    config = base or InstanceConfig()
    changes: dict[str, Any] = {}
    extra = dict(config.extra)
    ids: dict[int, str] = {}
    for key, value in raw.items():
        if key in MASKED_KEYS and value == MASK:
            continue  # a masked value read back and sent again: unchanged
        if key not in KNOWN_KEYS:
            _other(extra, ids, key, value)
        elif key == "authentication.type":
            text = _text(key, value)
            if text not in AUTH_TYPES:
                raise InvalidInput(f"{key} must be oauth2 or apiKey", field=key)
            changes["auth_type"] = text
        elif key == "oauth.api.key":
            changes["app_key"] = _credential(key, value)
        elif key == "oauth.api.secret":
            changes["app_secret"] = _credential(key, value)
        elif key == "oauth.callback.url":
            changes["oauth_callback_url"] = _text(key, value)
        elif key == "dropbox.access_token":
            changes["access_token"] = _credential(key, value)
        elif key == "event.notification.enabled":
            changes["events_enabled"] = _boolean(key, value)
        elif key == "event.notification.ordered":
            changes["ordered"] = _boolean(key, value)
        elif key == "event.notification.callback.url":
            url = _text(key, value, allow_empty=True)
            if url:
                check_callback_url(url)
            changes["callback_url"] = url or None
        elif key == "event.notification.signature.key":
            signature_key = _text(key, value, allow_empty=True) or None
            if signature_key:
                standard_webhook_secret(signature_key)  # a whsec_ key must be valid base64
            changes["signature_key"] = signature_key
        elif key == "event.vendor.type":
            vendor = VENDOR_TYPES.get(_text(key, value))
            if vendor is None:
                raise InvalidInput(f"{key} must be webhooks, polling or longpoll", field=key)
            changes["vendor_type"] = vendor
        elif key == "event.poller.refresh_interval":
            changes["poll_interval_minutes"] = _minutes(key, value)
    config = replace(config, **changes, extra=extra)
    _check_size(config)
    if require_complete:
        _check_complete(config, events_need_callback=events_need_callback)
    return config


def _other(extra: dict[str, Any], ids: dict[int, str], key: str, value: Any) -> None:
    """A key relaybox does not act on: kept as given (`null` removes it), within bounds.
    `ids` maps the config id of every key so far to its key (filled on first use)."""
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise InvalidInput(
            f"configuration keys are 1 to {MAX_KEY_LENGTH} printable characters",
            field=f"configuration.{key[:MAX_KEY_LENGTH]}",
        )
    if value is None:
        extra.pop(key, None)
        return
    try:
        size = len(value) if isinstance(value, str) else len(json.dumps(value, allow_nan=False))
    except ValueError:
        raise InvalidInput(f"{key}: NaN and Infinity are not JSON values", field=key) from None
    if size > MAX_VALUE_LENGTH:
        raise InvalidInput(f"{key} is longer than {MAX_VALUE_LENGTH} characters", field=key)
    if not ids:
        ids.update({config_id(k): k for k in (*KNOWN_KEYS, *extra)})
    other = ids.setdefault(config_id(key), key)
    if other != key:  # 48 bits: about one chance in 10^10 among 100 keys
        raise InvalidInput(
            f"configuration key {key!r} has the same id as {other!r}; use another name",
            field=key,
        )
    extra[key] = value


def _check_size(config: InstanceConfig) -> None:
    if len(config.plain()) > MAX_KEYS:
        raise InvalidInput(
            f"configuration: at most {MAX_KEYS} keys (relaybox's own included)",
            field="configuration",
        )


def config_id(key: str) -> int:
    """The stable id of a configuration key (`/instances/{id}/configuration/{configId}`):
    the first 48 bits of its SHA-256, the same for every instance and every release."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:6], "big")


def property_value(value: Any) -> str | None:
    """A configuration value as the anchor's `propertyValue`: a string (`true`, `15`,
    objects as JSON text), or null when the key is not set."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value, separators=(",", ":"))


def config_items(config: InstanceConfig) -> list[dict[str, Any]]:
    """`GET /instances/{id}/configuration`: every key relaybox acts on (set or not) and
    every other key set, as `{id, key, name, propertyValue}`; masked keys stay masked."""
    shown = config.public()
    keys = sorted(KNOWN_KEYS) + sorted(k for k in shown if k not in KNOWN_KEYS)
    return [
        {"id": config_id(k), "key": k, "name": k, "propertyValue": property_value(shown.get(k))}
        for k in keys
    ]


def _check_complete(config: InstanceConfig, *, events_need_callback: bool) -> None:
    if config.auth_type == "oauth2":
        for key, value in (
            ("oauth.api.key", config.app_key),
            ("oauth.api.secret", config.app_secret),
        ):
            if not value:
                raise InvalidInput(f"{key} is required for oauth2 instances", field=key)
    else:
        if not config.access_token:
            raise InvalidInput(
                "dropbox.access_token is required for apiKey instances",
                field="dropbox.access_token",
            )
        if not config.app_secret:
            raise InvalidInput(
                "oauth.api.secret is required to verify webhooks", field="oauth.api.secret"
            )
    if events_need_callback and config.events_enabled and not config.callback_url:
        raise InvalidInput(
            "event.notification.callback.url is required when events are enabled",
            field="event.notification.callback.url",
        )


def _text(key: str, value: Any, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{key} must be a string", field=key)
    text: str = value.strip()
    if not text and not allow_empty:
        raise InvalidInput(f"{key} must not be empty", field=key)
    if len(text) > MAX_VALUE_LENGTH:
        raise InvalidInput(f"{key} is longer than {MAX_VALUE_LENGTH} characters", field=key)
    return text


def _credential(key: str, value: Any) -> str:
    """An app key, app secret or access token: they travel in HTTP headers and forms, so
    visible ASCII characters only (no space inside)."""
    text = _text(key, value)
    if not CREDENTIAL.fullmatch(text):
        raise InvalidInput(f"{key} must be visible ASCII characters, no spaces", field=key)
    return text


def _boolean(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise InvalidInput(f"{key} must be true or false", field=key)


def _minutes(key: str, value: Any) -> float:
    if isinstance(value, bool):
        raise InvalidInput(f"{key} must be a number of minutes", field=key)
    try:
        minutes = float(value)
    except (TypeError, ValueError):
        raise InvalidInput(f"{key} must be a number of minutes", field=key) from None
    if not 0 < minutes <= 7 * 24 * 60:
        raise InvalidInput(f"{key} must be between 0 and 10080 minutes", field=key)
    return minutes


def _number_text(value: float) -> str:
    return str(int(value)) if value == int(value) else str(value)
