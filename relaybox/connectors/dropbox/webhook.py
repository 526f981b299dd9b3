"""Dropbox webhook notifications: their shape and the accounts they name."""

from __future__ import annotations

from typing import Any

from relaybox.core.errors import InvalidInput

MAX_ACCOUNTS = 10_000


def accounts_in(body: Any) -> list[str]:
    """The account ids of `{"list_folder": {"accounts": [...]}, "delta": {...}}`."""
    if not isinstance(body, dict):
        raise InvalidInput("notification must be a JSON object", field="body")
    list_folder = body.get("list_folder", {"accounts": []})
    accounts = list_folder.get("accounts") if isinstance(list_folder, dict) else None
    if not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts):
        raise InvalidInput("list_folder.accounts must be a list of strings", field="list_folder")
    if len(accounts) > MAX_ACCOUNTS:
        raise InvalidInput("list_folder.accounts is too long", field="list_folder")
    delta = body.get("delta")
    if delta is not None and not isinstance(delta, dict):
        raise InvalidInput("delta must be an object", field="delta")
    return sorted(set(accounts))


def for_account(body: dict[str, Any], account: str) -> dict[str, Any]:
    """The notification reduced to one account: `list_folder.accounts` is `[account]`.

    `delta.users` (Dropbox's legacy numeric user ids) is dropped: relaybox cannot tell
    which of them is this account's, and the others belong to other accounts of the app.
    """
    reduced = {key: value for key, value in body.items() if key != "delta"}
    list_folder = body.get("list_folder")
    reduced["list_folder"] = {
        **(list_folder if isinstance(list_folder, dict) else {}),
        "accounts": [account],
    }
    return reduced
