"""The Google Drive sandbox over HTTP (in-process ASGI): the consent page, the token and
revoke endpoints with Google's OAuth errors, API errors (credentials, scopes, required
parameters, faults), the control API and the files page."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette

from relaybox.gdrive_sandbox.app import create_app

REDIRECT = "https://app.example.com/cb"
DRIVE = "https://www.googleapis.com/auth/drive"
READONLY = "https://www.googleapis.com/auth/drive.metadata.readonly"


@pytest.fixture
async def app() -> AsyncIterator[Starlette]:
    application = create_app(push_delay=0)
    yield application
    await application.state.sandbox.aclose()


@pytest.fixture
async def http(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        yield client


@pytest.fixture
async def setup(http: httpx.AsyncClient) -> dict[str, Any]:
    app = (await http.post("/_sandbox/apps", json={"redirect_uris": [REDIRECT]})).json()
    account = (await http.post("/_sandbox/accounts", json={"email": "ann@example.com"})).json()
    return {**app, **account}


def consent_params(setup: dict[str, Any], **extra: str) -> dict[str, str]:
    return {
        "client_id": setup["client_id"],
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": DRIVE,
        "access_type": "offline",
        "state": "st-9",
        **extra,
    }


async def consent(http: httpx.AsyncClient, setup: dict[str, Any], **extra: str) -> dict[str, Any]:
    """Go through the consent page as a person; answers the redirect's query."""
    params = consent_params(setup, **extra)
    page = await http.get("/o/oauth2/v2/auth", params=params)
    assert page.status_code == 200 and "ann@example.com" in page.text and DRIVE in page.text
    decision = await http.post(
        "/o/oauth2/v2/auth",
        data={**params, "permission_id": setup["permission_id"], "decision": "allow"},
    )
    assert decision.status_code == 302
    target = urlsplit(decision.headers["location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == REDIRECT
    return {k: v[0] for k, v in parse_qs(target.query).items()}


async def exchange(http: httpx.AsyncClient, setup: dict[str, Any], code: str) -> httpx.Response:
    return await http.post(
        "/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": setup["client_id"],
            "client_secret": setup["client_secret"],
        },
    )


# ------------------------------------------------------------------ OAuth


async def test_the_consent_flow_gives_a_refresh_token_once_unless_consent_is_asked_again(
    http: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    back = await consent(http, setup)
    assert back["state"] == "st-9" and back["scope"] == DRIVE and back["code"].startswith("4/")
    first = await exchange(http, setup, back["code"])
    assert first.status_code == 200 and first.headers["cache-control"].startswith("no-cache")
    body = first.json()
    assert set(body) == {"access_token", "expires_in", "refresh_token", "scope", "token_type"}
    assert body["token_type"] == "Bearer" and body["expires_in"] == 3599
    assert body["access_token"].startswith("ya29.") and body["refresh_token"].startswith("1//")
    again = (await exchange(http, setup, (await consent(http, setup))["code"])).json()
    assert "refresh_token" not in again  # signed in again without prompt=consent
    asked = await consent(http, setup, prompt="consent")
    assert "refresh_token" in (await exchange(http, setup, asked["code"])).json()
    online = await consent(http, setup, access_type="online", prompt="consent")
    assert "refresh_token" not in (await exchange(http, setup, online["code"])).json()

    basic = base64.b64encode(f"{setup['client_id']}:{setup['client_secret']}".encode()).decode()
    refreshed = await http.post(
        "/token",
        data={"grant_type": "refresh_token", "refresh_token": body["refresh_token"]},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert refreshed.status_code == 200 and set(refreshed.json()) == {
        "access_token",
        "expires_in",
        "scope",
        "token_type",
    }


async def test_the_consent_page_shows_errors_instead_of_redirecting_and_denial_redirects(
    http: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    cases = [
        ({"client_id": "nope"}, 401, "invalid_client"),
        ({"redirect_uri": "https://evil.example/cb"}, 400, "redirect_uri_mismatch"),
        ({"response_type": "token"}, 400, "unsupported_response_type"),
        ({"scope": ""}, 400, "invalid_request"),
        ({"scope": "https://mail.google.com/"}, 400, "invalid_scope"),
    ]
    for change, status, error in cases:
        page = await http.get("/o/oauth2/v2/auth", params=consent_params(setup, **change))
        assert page.status_code == status and error in page.text, change
        assert "location" not in page.headers
    denied = await http.post(
        "/o/oauth2/v2/auth",
        data={**consent_params(setup), "permission_id": setup["permission_id"], "decision": "no"},
    )
    assert parse_qs(urlsplit(denied.headers["location"]).query) == {
        "error": ["access_denied"],
        "state": ["st-9"],
    }
    silent = await http.get("/o/oauth2/v2/auth", params=consent_params(setup, prompt="none"))
    assert "error=interaction_required" in silent.headers["location"]


async def test_the_token_endpoint_answers_googles_oauth_errors(
    http: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    code = (await consent(http, setup))["code"]
    client = {"client_id": setup["client_id"], "client_secret": setup["client_secret"]}

    async def token(**form: str) -> tuple[int, dict[str, Any]]:
        answer = await http.post("/token", data=form)
        return answer.status_code, answer.json()

    assert await token(**{**client, "client_secret": "wrong"}, grant_type="refresh_token") == (
        401,
        {"error": "invalid_client", "error_description": "Unauthorized"},
    )
    assert (await token(client_id="nope", client_secret="x", grant_type="x"))[0] == 401
    assert await token(**client, grant_type="password") == (
        400,
        {"error": "unsupported_grant_type", "error_description": "Invalid grant_type: password"},
    )
    assert await token(**client, grant_type="authorization_code", code=code) == (
        400,
        {
            "error": "invalid_request",
            "error_description": "Missing required parameter: redirect_uri",
        },
    )
    assert (
        await token(
            **client, grant_type="authorization_code", code="4/bogus", redirect_uri=REDIRECT
        )
    )[1]["error"] == "invalid_grant"
    assert (await token(**client, grant_type="refresh_token", refresh_token="1//nope"))[1] == {
        "error": "invalid_grant",
        "error_description": "Token has been expired or revoked.",
    }
    await http.post("/_sandbox/faults", json={"method": "oauth2.token", "status": 503})
    status, body = await token(**client, grant_type="refresh_token", refresh_token="1//x")
    assert status == 503 and body["error"] == "internal_failure"


async def test_revoke_takes_the_token_in_the_query_or_the_form(
    http: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    tokens = (await exchange(http, setup, (await consent(http, setup))["code"])).json()
    missing = await http.post("/revoke")
    assert missing.status_code == 400 and missing.json()["error"] == "invalid_request"
    revoked = await http.post("/revoke", data={"token": tokens["refresh_token"]})
    assert revoked.status_code == 200 and revoked.json() == {}
    again = await http.post("/revoke", params={"token": tokens["access_token"]})
    assert again.status_code == 400 and again.json() == {
        "error": "invalid_token",
        "error_description": "Token expired or revoked",
    }
    about = await http.get(
        "/drive/v3/about",
        params={"fields": "user"},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert about.status_code == 401


# ------------------------------------------------------------------- the API


async def bearer(
    http: httpx.AsyncClient, setup: dict[str, Any], scope: str = DRIVE
) -> dict[str, str]:
    back = await consent(http, setup, scope=scope, prompt="consent")
    token = (await exchange(http, setup, back["code"])).json()["access_token"]
    return {"Authorization": f"Bearer {token}"}


async def test_api_errors_are_googles(http: httpx.AsyncClient, setup: dict[str, Any]) -> None:
    anonymous = await http.get("/drive/v3/changes/startPageToken")
    assert anonymous.status_code == 401
    assert anonymous.headers["content-type"] == "application/json; charset=UTF-8"
    error = anonymous.json()["error"]
    assert error["status"] == "UNAUTHENTICATED" and error["errors"][0]["reason"] == "required"
    wrong = await http.get("/drive/v3/about", headers={"Authorization": "Bearer ya29.nope"})
    assert wrong.json()["error"]["errors"][0] == {
        "message": wrong.json()["error"]["message"],
        "domain": "global",
        "reason": "authError",
        "location": "Authorization",
        "locationType": "header",
    }
    assert wrong.headers["www-authenticate"].startswith(
        'Bearer realm="https://accounts.google.com/"'
    )

    reader = await bearer(http, setup, READONLY)
    assert (await http.get("/drive/v3/files", headers=reader)).status_code == 200
    create = await http.post("/drive/v3/files", json={"name": "x"}, headers=reader)
    assert create.status_code == 403 and create.json()["error"]["status"] == "PERMISSION_DENIED"
    assert create.json()["error"]["errors"][0]["reason"] == "insufficientPermissions"

    writer = await bearer(http, setup)
    required = await http.get("/drive/v3/changes", headers=writer)
    assert required.json()["error"]["errors"][0] == {
        "message": "Required parameter: pageToken",
        "domain": "global",
        "reason": "required",
        "location": "pageToken",
        "locationType": "parameter",
    }
    for params in (
        {"pageSize": "0"},
        {"pageSize": "ten"},
        {"includeRemoved": "yes"},
        {"spaces": "x"},
    ):
        answer = await http.get(
            "/drive/v3/changes", params={"pageToken": "1", **params}, headers=writer
        )
        assert answer.status_code == 400, params
        assert answer.json()["error"]["errors"][0]["reason"] == "invalid"
    made = (await http.post("/drive/v3/files", json={"name": "f"}, headers=writer)).json()
    parents = await http.patch(
        f"/drive/v3/files/{made['id']}", json={"parents": ["root"]}, headers=writer
    )
    assert parents.status_code == 403
    assert parents.json()["error"]["errors"][0]["reason"] == "fieldNotWritable"
    watch = await http.post(
        "/drive/v3/changes/watch",
        params={"pageToken": "1"},
        json={"id": "c1", "type": "email", "address": "https://a.example/h"},
        headers=writer,
    )
    assert watch.json()["error"]["errors"][0]["reason"] == "push.channelTypeNotSupported"
    # Google pushes over HTTPS only (plain HTTP only to this machine, a sandbox leniency).
    for address in ("http://app.example/h", "http://10.0.0.1/h", "ftp://app.example/h"):
        watch = await http.post(
            "/drive/v3/changes/watch",
            params={"pageToken": "1"},
            json={"id": "c2", "type": "web_hook", "address": address},
            headers=writer,
        )
        assert watch.status_code == 400, address
        assert watch.json()["error"]["errors"][0]["reason"] == "push.webhookUrlNotHttps"
    media = await http.get(f"/drive/v3/files/{made['id']}", params={"alt": "media"}, headers=writer)
    assert media.status_code == 200 and media.content == b""

    await http.post(
        "/_sandbox/faults",
        json={"method": "files.list", "status": 429, "count": 2, "retry_after": 3, "delay_ms": 1},
    )
    for _ in range(2):
        limited = await http.get("/drive/v3/files", headers=writer)
        assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
        assert limited.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    assert (await http.get("/drive/v3/files", headers=writer)).status_code == 200
    await http.post("/_sandbox/faults", json={"method": "*", "status": 500})
    await http.delete("/_sandbox/faults")
    assert (await http.get("/drive/v3/files", headers=writer)).status_code == 200


# ------------------------------------------------------------ the control API


async def test_the_control_api_builds_and_changes_a_drive(
    http: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    files = f"/_sandbox/accounts/{setup['permission_id']}/files"
    folder = (await http.post(files, json={"name": "Docs", "folder": True})).json()
    made = await http.post(files, json={"name": "a.txt", "parent_path": "/Docs", "content": "hi"})
    assert made.status_code == 200
    item = made.json()
    assert (
        item["path"] == "/Docs/a.txt" and item["mimeType"] == "text/plain" and item["size"] == "2"
    )
    moved = await http.patch(f"{files}/{item['id']}", json={"parent": "root", "name": "b.txt"})
    assert moved.json()["path"] == "/b.txt"
    trashed = await http.patch(f"{files}/{folder['id']}", json={"trashed": True})
    assert trashed.json()["trashed"] is True
    removed = await http.delete(f"{files}/{folder['id']}")
    assert removed.json() == {"removed": [folder["id"]]}
    listed = (await http.get(files)).json()["files"]
    assert [(f["name"], f["path"]) for f in listed] == [("b.txt", "/b.txt")]
    missing = await http.patch(f"{files}/1nope", json={"name": "x"})
    assert (
        missing.status_code == 404 and missing.json()["error"]["errors"][0]["reason"] == "notFound"
    )

    assert (await http.post("/_sandbox/accounts", json={})).status_code == 400
    assert (await http.get("/_sandbox/accounts/nobody/files")).status_code == 404
    assert (await http.post("/_sandbox/faults", json={"status": 99})).status_code == 400
    bad_uris = await http.post("/_sandbox/apps", json={"redirect_uris": "https://x"})
    assert bad_uris.status_code == 400
    clock = (await http.post("/_sandbox/clock", json={"advance_seconds": 90})).json()
    assert clock["offset_seconds"] == 90.0
    assert (await http.post("/_sandbox/clock", json={"advance_seconds": -1})).status_code == 400
    tokens = await http.post("/_sandbox/tokens/revoke", json={"permission_id": "nobody"})
    assert tokens.status_code == 404


async def test_the_files_page_changes_the_drive_by_hand(
    http: httpx.AsyncClient, setup: dict[str, Any]
) -> None:
    who = setup["permission_id"]
    start = (await http.get("/_sandbox/accounts/" + who + "/files")).json()["files"]
    assert start == []

    async def act(action: str, **form: str) -> str:
        answer = await http.post(f"/_sandbox/ui/{action}", data={"account": who, **form})
        assert answer.status_code == 303
        page = await http.get(answer.headers["location"])
        assert page.status_code == 200
        return page.text

    assert "Created /Notes" in await act("folder", name="Notes")
    notes = (await http.get(f"/_sandbox/accounts/{who}/files")).json()["files"][0]["id"]
    assert "Created /Notes/todo.txt" in await act(
        "file", name="todo.txt", parent=notes, content="x"
    )
    todo = (await http.get(f"/_sandbox/accounts/{who}/files")).json()["files"][1]["id"]
    assert "Renamed /Notes/todo.txt to /Notes/done.txt" in await act(
        "rename", file_id=todo, name="done.txt"
    )
    assert "Moved /Notes/done.txt to /done.txt" in await act("move", file_id=todo, parent="root")
    assert "Trashed /Notes" in await act("trash", file_id=notes)
    assert "Restored /Notes" in await act("untrash", file_id=notes)
    page = await act("move", file_id=notes, parent=notes)
    assert "Failed to move" in page
    assert "Deleted /Notes for good" in await act("delete", file_id=notes)
    files = (await http.get(f"/_sandbox/accounts/{who}/files")).json()["files"]
    assert [f["path"] for f in files] == ["/done.txt"]
    home = await http.get("/", follow_redirects=False)
    assert home.headers["location"] == "/_sandbox/ui"
