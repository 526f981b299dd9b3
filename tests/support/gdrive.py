"""The Google Drive sandbox for tests: an app, an account that consented, and the official
client (`google-api-python-client` with `google-auth` credentials) pointed at it."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from google.oauth2.credentials import Credentials
from googleapiclient.discovery import build

REDIRECT = "https://app.example.com/oauth/callback"
DRIVE_SCOPE = "https://www.googleapis.com/auth/drive"


@dataclass
class Grant:
    client_id: str
    client_secret: str
    permission_id: str
    email: str
    tokens: dict[str, Any]


def grant(http: httpx.Client, email: str) -> Grant:
    """Through the control API (`http` at the sandbox's base): register an app, let `email`
    consent to offline access, and exchange the code at the token endpoint."""
    app = http.post("/_sandbox/apps", json={"redirect_uris": [REDIRECT]}).json()
    account = http.post("/_sandbox/accounts", json={"email": email}).json()
    code = http.post(
        "/_sandbox/authorize",
        json={
            "client_id": app["client_id"],
            "permission_id": account["permission_id"],
            "redirect_uri": REDIRECT,
            "scope": DRIVE_SCOPE,
        },
    ).json()["code"]
    tokens = http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": app["client_id"],
            "client_secret": app["client_secret"],
        },
    ).json()
    return Grant(app["client_id"], app["client_secret"], account["permission_id"], email, tokens)


def drive_client(base: str, granted: Grant) -> tuple[Any, Credentials]:
    """The official Drive v3 client for `granted`, and its credentials (which refresh
    through the sandbox's token URI)."""
    credentials = Credentials(
        token=granted.tokens["access_token"],
        refresh_token=granted.tokens["refresh_token"],
        token_uri=f"{base}/token",
        client_id=granted.client_id,
        client_secret=granted.client_secret,
        expiry=datetime.now(UTC).replace(tzinfo=None)
        + timedelta(seconds=granted.tokens["expires_in"]),
    )
    client = build(
        "drive",
        "v3",
        credentials=credentials,
        static_discovery=True,
        client_options={"api_endpoint": f"{base}/drive/v3/"},
    )
    return client, credentials
