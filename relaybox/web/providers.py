"""The providers as the console presents them: each connector's name, what its OAuth app's
fields are called, and the event sources it can offer (from the connector's capabilities,
connectors/base.py: no longpoll where it cannot wait, no webhooks where it has no push)."""

from __future__ import annotations

from dataclasses import dataclass

from relaybox.connectors.base import Connector
from relaybox.core.errors import InvalidInput
from relaybox.runtime import Runtime

VENDOR_TYPES = ("webhooks", "polling", "longpoll")

# How each provider's developer console names an OAuth app and its two values; a provider
# not named here is said in Dropbox's words.
APP_WORDS = {
    "dropbox": ("Dropbox app", "App key", "App secret"),
    "googledrive": ("Google OAuth client", "Client ID", "Client secret"),
}


@dataclass(frozen=True)
class Provider:
    key: str  # the element key ("dropbox", "googledrive")
    name: str  # the connector's name, as users know it
    app: str  # what the provider calls the OAuth app ("Dropbox app", "Google OAuth client")
    key_label: str
    secret_label: str
    vendor_types: tuple[str, ...]  # the event sources it offers, the default first
    push: str | None  # how its webhooks come: "app" (one per app), "channel" (per account)

    @property
    def longpoll(self) -> bool:
        return "longpoll" in self.vendor_types


def provider(connector: Connector) -> Provider:
    app, key_label, secret_label = APP_WORDS.get(
        connector.element_key, (f"{connector.name} app", "App key", "App secret")
    )
    offered = tuple(
        kind
        for kind in VENDOR_TYPES
        if (kind != "longpoll" or connector.waits) and (kind != "webhooks" or connector.push)
    )
    return Provider(
        connector.element_key,
        connector.name,
        app,
        key_label,
        secret_label,
        offered,
        connector.push,
    )


def providers(runtime: Runtime) -> list[Provider]:
    """Every provider relaybox has, in the runtime's order (Dropbox first)."""
    return [provider(connector) for connector in runtime.connectors.values()]


def provider_of(runtime: Runtime, element_key: str) -> Provider:
    """The provider of `element_key` (InvalidInput naming the known ones, otherwise)."""
    return provider(runtime.connector(element_key))


def chosen(runtime: Runtime, element_key: str | None) -> Provider:
    """The provider a page asked for; the first one when it named none or an unknown one."""
    if element_key and element_key in runtime.connectors:
        return provider_of(runtime, element_key)
    return providers(runtime)[0]


def name_of(runtime: Runtime, element_key: str) -> str:
    """The connector's name for `element_key`, or the key itself when relaybox has none."""
    found = runtime.connectors.get(element_key)
    return found.name if found is not None else element_key


def names(runtime: Runtime) -> dict[str, str]:
    return {key: connector.name for key, connector in runtime.connectors.items()}


def check_source(offered: Provider, vendor_type: str) -> None:
    """The connect form offers only the provider's event sources; anything else is refused
    here, before the browser leaves for the consent page."""
    if vendor_type not in offered.vendor_types:
        said = "has no longpoll" if vendor_type == "longpoll" else f"offers no {vendor_type!r}"
        raise InvalidInput(
            f"event.vendor.type: {offered.name} {said}; use {' or '.join(offered.vendor_types)}",
            field="event.vendor.type",
        )
