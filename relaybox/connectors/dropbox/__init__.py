"""The Dropbox connector."""

from __future__ import annotations

from typing import Any

from relaybox.connectors.dropbox.webhook import accounts_in, for_account
from relaybox.core.signing import verify_dropbox_signature, well_formed_dropbox_signature


class DropboxWebhooks:
    element_key = "dropbox"
    signature_header = "X-Dropbox-Signature"

    def well_formed(self, signature: str) -> bool:
        return well_formed_dropbox_signature(signature)

    def verify(self, app_secret: str, body: bytes, signature: str) -> bool:
        return verify_dropbox_signature(app_secret, body, signature)

    def accounts(self, body: Any) -> list[str]:
        return accounts_in(body)

    def for_account(self, body: Any, account: str) -> dict[str, Any]:
        return for_account(body, account)
