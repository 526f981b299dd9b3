"""What relaybox needs of a provider's webhooks, whatever the provider."""

from __future__ import annotations

from typing import Any, Protocol


class WebhookVerifier(Protocol):
    """Checks a provider notification and says which accounts it is about."""

    element_key: str
    signature_header: str

    def well_formed(self, signature: str) -> bool:
        """Whether `signature` has the provider's shape: checked before any HMAC is run."""
        ...

    def verify(self, app_secret: str, body: bytes, signature: str) -> bool: ...

    def accounts(self, body: Any) -> list[str]: ...

    def for_account(self, body: Any, account: str) -> dict[str, Any]:
        """The notification as if it had named only `account` (what its instance keeps)."""
        ...
