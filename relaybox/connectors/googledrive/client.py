"""Async Google Drive API v3 and Google OAuth 2.0 client: one `httpx.AsyncClient` seam.

Base URLs come from configuration, so the same client talks to Google or to the sandbox
(docs/gdrive-sandbox.md). Google's answers are mapped onto `relaybox.core.errors`:

| answer                                               | raised                    |
|------------------------------------------------------|---------------------------|
| 401 (Google tells expired and revoked tokens apart   | TokenExpired (a refresh   |
| in no way)                                           | decides which it was)     |
| token endpoint 400/401 (`invalid_grant`, ...)        | ProviderAuthError         |
| 403 `insufficientPermissions`, `authError`           | ProviderAuthError         |
| 400 `invalid` at location `pageToken`                | CursorReset               |
| 429, 403 `userRateLimitExceeded`/`rateLimitExceeded` | RateLimited(retry_after)  |
| 5xx, timeout, connection error                       | ProviderUnavailable       |
| other 4xx                                            | ProviderRejected          |
"""

from __future__ import annotations

import logging
import random
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import quote, urlencode

import httpx

from relaybox.connectors.base import Tokens
from relaybox.connectors.http import OAuth2Client, json_or_none, retry_after
from relaybox.core.clock import Clock
from relaybox.core.errors import (
    CursorReset,
    ProviderAuthError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    TokenExpired,
)
from relaybox.httpclients import ClientPool

log = logging.getLogger(__name__)

SCOPE = "https://www.googleapis.com/auth/drive.readonly"
FOLDER = "application/vnd.google-apps.folder"
# What relaybox reads of a file: enough for its path, kind and content version.
FILE_FIELDS = "id,name,mimeType,parents,trashed,md5Checksum,headRevisionId,modifiedTime,size"
# What relaybox reads of a folder it looks up to place what is inside it.
FOLDER_FIELDS = "id,name,mimeType,parents,trashed"
RATE_REASONS = frozenset({"userRateLimitExceeded", "rateLimitExceeded"})
AUTH_REASONS = frozenset({"insufficientPermissions", "authError", "insufficientFilePermissions"})


@dataclass(frozen=True)
class GoogleURLs:
    """Google's hosts; the sandbox serves all three under one base URL."""

    api: str = "https://www.googleapis.com"
    oauth: str = "https://oauth2.googleapis.com"
    accounts: str = "https://accounts.google.com"

    @classmethod
    def one(cls, base: str) -> GoogleURLs:
        base = base.rstrip("/")
        return cls(api=base, oauth=base, accounts=base)


def authorize_url(
    urls: GoogleURLs, *, client_id: str, redirect_uri: str | None, state: str | None
) -> str:
    """Google's consent page: an authorization code with offline access (a refresh token),
    asked again every time (`prompt=consent`) so a reconnected account gets one too."""
    params = {
        "client_id": client_id,
        "response_type": "code",
        "scope": SCOPE,
        "access_type": "offline",
        "prompt": "consent",
        "include_granted_scopes": "true",
    }
    if redirect_uri:
        params["redirect_uri"] = redirect_uri
    if state:
        params["state"] = state
    return f"{urls.accounts}/o/oauth2/v2/auth?{urlencode(params)}"


# The parameters of each Drive call relaybox makes, as the official client would send
# them too (tests/integration/test_gdrive_sandbox_sdk.py makes the same calls with it).
WATCH_PARAMS = {"includeRemoved": "true", "spaces": "drive"}


def files_list_params(page_token: str | None, page_size: int) -> dict[str, str]:
    params = {
        "q": "trashed = false",
        "spaces": "drive",
        "orderBy": "folder,createdTime",
        "pageSize": str(page_size),
        "fields": f"nextPageToken,files({FILE_FIELDS})",
    }
    if page_token:
        params["pageToken"] = page_token
    return params


def files_get_params(fields: str = FOLDER_FIELDS) -> dict[str, str]:
    return {"fields": fields}


def changes_list_params(page_token: str, page_size: int) -> dict[str, str]:
    return {
        "pageToken": page_token,
        "spaces": "drive",
        "pageSize": str(page_size),
        "fields": (
            f"nextPageToken,newStartPageToken,changes(fileId,removed,time,file({FILE_FIELDS}))"
        ),
        **WATCH_PARAMS,
    }


def watch_body(channel_id: str, token: str, address: str, expiration: datetime) -> dict[str, str]:
    return {
        "id": channel_id,
        "type": "web_hook",
        "address": address,
        "token": token,
        "expiration": str(int(expiration.timestamp() * 1000)),
    }


class DriveClient(OAuth2Client):
    """Calls Drive with a given access token; knows nothing of instances or storage.
    5xx answers and lost connections are retried within the call (connectors/http.py);
    every other error is raised at once."""

    provider = "Google"

    def __init__(
        self,
        urls: GoogleURLs,
        http: httpx.AsyncClient | ClientPool,
        *,
        retry_base: float = 1.0,
        retries: int = 3,
        page_size: int = 1000,
        rng: random.Random | None = None,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(http, retry_base=retry_base, retries=retries, rng=rng, clock=clock)
        self.urls = urls
        self.page_size = page_size

    # --- OAuth ---------------------------------------------------------------------

    async def revoke(self, token: str) -> None:
        """Revoke the grant (any of its tokens revokes all of them)."""
        url = f"{self.urls.oauth}/revoke"
        response = await self.retrying("POST", url, data={"token": token})
        if response.status_code >= 400:
            said = _oauth_said(response)
            raise ProviderRejected(
                f"Google refused the revocation: {said}",
                status=response.status_code,
                provider_message=said,
            )

    async def token(self, form: dict[str, str], app_key: str, app_secret: str) -> Tokens:
        form = {**form, "client_id": app_key, "client_secret": app_secret}
        url = f"{self.urls.oauth}/token"
        response = await self.retrying("POST", url, data=form)
        if response.status_code in (400, 401):
            said = _oauth_said(response)
            raise ProviderAuthError(
                f"Google refused the token request: {said}",
                status=response.status_code,
                provider_message=said,
            )
        data = self._check(response, "oauth2.token")
        refresh = data.get("refresh_token")
        return Tokens(
            access_token=str(data["access_token"]),
            refresh_token=str(refresh) if isinstance(refresh, str) else None,
            expires_at=self.expires_at(data.get("expires_in")),
        )

    # --- Drive ---------------------------------------------------------------------

    async def about(self, access_token: str) -> dict[str, Any]:
        return await self.get(
            "drive.about.get",
            "/about",
            access_token,
            {"fields": "user(permissionId,emailAddress,displayName)"},
        )

    async def start_page_token(self, access_token: str) -> str:
        answer = await self.get(
            "drive.changes.getStartPageToken", "/changes/startPageToken", access_token, {}
        )
        return str(answer["startPageToken"])

    async def list_files(self, access_token: str, page_token: str | None) -> dict[str, Any]:
        """One page of the account's files not in the trash, folders first."""
        params = files_list_params(page_token, self.page_size)
        return await self.get("drive.files.list", "/files", access_token, params)

    async def get_file(
        self, access_token: str, file_id: str, fields: str = FOLDER_FIELDS
    ) -> dict[str, Any]:
        """`files.get` of one file (`root` names My Drive's root folder)."""
        path = f"/files/{quote(file_id, safe='')}"
        return await self.get("drive.files.get", path, access_token, files_get_params(fields))

    async def list_changes(self, access_token: str, page_token: str) -> dict[str, Any]:
        params = changes_list_params(page_token, self.page_size)
        return await self.get("drive.changes.list", "/changes", access_token, params)

    async def watch(
        self,
        access_token: str,
        page_token: str,
        *,
        channel_id: str,
        channel_token: str,
        address: str,
        expiration: datetime,
    ) -> dict[str, Any]:
        """`changes.watch`: a channel that POSTs to `address` when the account changes."""
        body = watch_body(channel_id, channel_token, address, expiration)
        params = {"pageToken": page_token, **WATCH_PARAMS}
        return await self._drive(
            "drive.changes.watch", "POST", "/changes/watch", access_token, params, body
        )

    async def stop(self, access_token: str, channel_id: str, resource_id: str) -> None:
        body = {"id": channel_id, "resourceId": resource_id}
        await self._drive("drive.channels.stop", "POST", "/channels/stop", access_token, {}, body)

    async def get(
        self, method: str, path: str, access_token: str, params: dict[str, str]
    ) -> dict[str, Any]:
        return await self._drive(method, "GET", path, access_token, params, None)

    async def _drive(
        self,
        method: str,
        verb: str,
        path: str,
        access_token: str,
        params: dict[str, str],
        body: dict[str, Any] | None,
    ) -> dict[str, Any]:
        url = f"{self.urls.api}/drive/v3{path}"
        headers = {"Authorization": f"Bearer {access_token}"}
        options: dict[str, Any] = {"params": params, "headers": headers}
        if body is not None:
            options["json"] = body
        return self._check(await self.retrying(verb, url, **options), method)

    # --- plumbing ------------------------------------------------------------------

    def _check(self, response: httpx.Response, method: str) -> dict[str, Any]:
        status = response.status_code
        if status in (200, 204):
            data = json_or_none(response)
            return data if data is not None else {}
        error = _google_error(response)
        said = error.message or response.text[:300] or None
        if status == 401:
            raise TokenExpired(
                f"{method}: Google refused the access token", status=401, provider_message=said
            )
        if status == 429 or (status == 403 and error.reason in RATE_REASONS):
            raise RateLimited(
                f"{method}: rate limited",
                retry_after=retry_after(response),
                status=status,
                provider_message=said,
            )
        if status == 403 and error.reason in AUTH_REASONS:
            raise ProviderAuthError(
                f"{method}: Google refused access ({error.reason})",
                status=403,
                provider_message=said,
            )
        if status == 400 and error.location == "pageToken":
            raise CursorReset(f"{method}: page token void", status=400, provider_message=said)
        if status >= 500:
            raise ProviderUnavailable(
                f"{method}: Google answered {status}", status=status, provider_message=said
            )
        log.warning("Google rejected %s with %s: %s", method, status, said)
        raise ProviderRejected(
            f"{method}: Google answered {status}: {said}", status=status, provider_message=said
        )


@dataclass(frozen=True)
class GoogleError:
    """What a Google API error body says: `{"error": {"message", "errors": [{"reason",
    "location"}]}}`."""

    message: str = ""
    reason: str = ""
    location: str = ""


def _google_error(response: httpx.Response) -> GoogleError:
    body = json_or_none(response)
    error = body.get("error") if body else None
    if not isinstance(error, dict):
        return GoogleError()
    first = error.get("errors")
    detail = first[0] if isinstance(first, list) and first and isinstance(first[0], dict) else {}
    return GoogleError(
        str(error.get("message", ""))[:300],
        str(detail.get("reason", "")),
        str(detail.get("location", "")),
    )


def _oauth_said(response: httpx.Response) -> str:
    """`error: error_description` of an OAuth error body, or the start of its text."""
    body = json_or_none(response)
    if body is None:
        return response.text[:200] or f"HTTP {response.status_code}"
    error = str(body.get("error", ""))[:100]
    description = str(body.get("error_description", ""))[:200]
    return f"{error}: {description}" if description else error or f"HTTP {response.status_code}"
