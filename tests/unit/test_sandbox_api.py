"""The sandbox over HTTP (in-process ASGI): OAuth, files, cursors, longpoll, faults."""

import asyncio
import base64
import json
import pathlib
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from relaybox.sandbox.app import create_app

REDIRECT = "https://app.example.com/auth"


@pytest.fixture
async def app() -> AsyncIterator[Starlette]:
    application = create_app(webhook_delay=0.05)
    yield application
    await application.state.sandbox.aclose()


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as c:
        yield c


class Session:
    """An app, an account and its tokens, plus helpers to call Dropbox routes."""

    def __init__(self, client: httpx.AsyncClient, account_id: str, tokens: dict[str, Any]):
        self.client, self.account_id, self.tokens = client, account_id, tokens

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens['access_token']}"}

    async def rpc(self, route: str, arg: Any = None) -> httpx.Response:
        content = b"" if arg is None else json.dumps(arg).encode()
        headers = {**self.headers, "Content-Type": "application/json"}
        return await self.client.post(f"/2/{route}", content=content, headers=headers)

    async def ok(self, route: str, arg: Any = None) -> Any:
        answer = await self.rpc(route, arg)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"] == "application/json"
        return answer.json()

    async def put(self, path: str, content: bytes) -> dict[str, Any]:
        answer = await self.client.put(
            f"/_sandbox/accounts/{self.account_id}/files", params={"path": path}, content=content
        )
        assert answer.status_code == 200, answer.text
        result: dict[str, Any] = answer.json()
        return result


async def connect(client: httpx.AsyncClient, email: str = "ann@example.com") -> Session:
    await client.post("/_sandbox/apps", json={"app_key": "key", "app_secret": "secret"})
    account = (await client.post("/_sandbox/accounts", json={"email": email})).json()
    code = (
        await client.post(
            "/_sandbox/authorize",
            json={
                "app_key": "key",
                "account_id": account["account_id"],
                "redirect_uri": REDIRECT,
                "token_access_type": "offline",
            },
        )
    ).json()["code"]
    answer = await client.post(
        "/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "client_id": "key",
            "client_secret": "secret",
            "redirect_uri": REDIRECT,
        },
    )
    assert answer.status_code == 200, answer.text
    return Session(client, account["account_id"], answer.json())


@pytest.fixture
async def session(client: httpx.AsyncClient) -> Session:
    return await connect(client)


# ----------------------------------------------------------------- accounts, OAuth


async def test_accounts_have_dropbox_shaped_ids_and_are_idempotent(
    client: httpx.AsyncClient,
) -> None:
    first = (await client.post("/_sandbox/accounts", json={"email": "a@x.io"})).json()
    again = (await client.post("/_sandbox/accounts", json={"email": "A@x.io"})).json()
    assert first["account_id"].startswith("dbid:") and len(first["account_id"]) == 40
    assert isinstance(first["uid"], int)
    assert again["account_id"] == first["account_id"]


async def test_token_answer_is_dropbox_shaped(session: Session) -> None:
    tokens = session.tokens
    assert tokens["access_token"].startswith("sl.")
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 14400
    assert tokens["account_id"] == session.account_id and tokens["uid"].isdigit()
    assert tokens["refresh_token"] and tokens["scope"]
    account = await session.ok("users/get_current_account")
    assert account["account_id"] == session.account_id
    assert account["email"] == "ann@example.com"


async def _exchange(client: httpx.AsyncClient, **form: str) -> httpx.Response:
    return await client.post("/oauth2/token", data=form)


async def test_code_is_single_use_and_bound_to_redirect_uri(client: httpx.AsyncClient) -> None:
    await client.post("/_sandbox/apps", json={"app_key": "k", "app_secret": "s"})
    account = (await client.post("/_sandbox/accounts", json={"email": "b@x.io"})).json()

    async def code() -> str:
        answer = await client.post(
            "/_sandbox/authorize",
            json={"app_key": "k", "account_id": account["account_id"], "redirect_uri": REDIRECT},
        )
        return str(answer.json()["code"])

    wrong_uri = await _exchange(
        client,
        grant_type="authorization_code",
        code=await code(),
        client_id="k",
        client_secret="s",
        redirect_uri="https://evil.example/cb",
    )
    assert wrong_uri.status_code == 400 and wrong_uri.json()["error"] == "invalid_grant"

    the_code = await code()
    basic = base64.b64encode(b"k:s").decode()
    first = await client.post(
        "/oauth2/token",
        data={"grant_type": "authorization_code", "code": the_code, "redirect_uri": REDIRECT},
        headers={"Authorization": f"Basic {basic}"},
    )
    assert first.status_code == 200, first.text
    assert "refresh_token" not in first.json()  # online access: no refresh token
    second = await _exchange(
        client,
        grant_type="authorization_code",
        code=the_code,
        client_id="k",
        client_secret="s",
        redirect_uri=REDIRECT,
    )
    assert second.status_code == 400
    assert second.headers["content-type"] == "application/json"
    assert second.json()["error"] == "invalid_grant" and second.json()["error_description"]

    bad_secret = await _exchange(
        client, grant_type="authorization_code", code=await code(), client_id="k",
        client_secret="nope", redirect_uri=REDIRECT,
    )  # fmt: skip
    assert bad_secret.status_code == 400 and bad_secret.json()["error"] == "invalid_client"


async def test_expired_token_then_refresh(client: httpx.AsyncClient, session: Session) -> None:
    await client.post("/_sandbox/faults", json={"status": "expire_tokens"})
    expired = await session.rpc("users/get_current_account")
    assert expired.status_code == 401
    assert expired.headers["content-type"] == "application/json"
    assert expired.json() == {
        "error_summary": "expired_access_token/..",
        "error": {".tag": "expired_access_token"},
    }
    refreshed = await _exchange(
        client,
        grant_type="refresh_token",
        refresh_token=session.tokens["refresh_token"],
        client_id="key",
        client_secret="secret",
    )
    assert refreshed.status_code == 200
    body = refreshed.json()
    assert set(body) == {"access_token", "token_type", "expires_in"}
    session.tokens["access_token"] = body["access_token"]
    assert (await session.rpc("users/get_current_account")).status_code == 200


async def test_revoke_voids_the_token_family(client: httpx.AsyncClient, session: Session) -> None:
    refresh = session.tokens["refresh_token"]
    first_token = session.tokens["access_token"]
    second = await _exchange(
        client, grant_type="refresh_token", refresh_token=refresh, client_id="key",
        client_secret="secret",
    )  # fmt: skip
    session.tokens["access_token"] = second.json()["access_token"]
    revoked = await session.rpc("auth/token/revoke")
    assert revoked.status_code == 200 and revoked.json() is None
    for token in (first_token, second.json()["access_token"]):
        answer = await client.post(
            "/2/users/get_current_account", headers={"Authorization": f"Bearer {token}"}
        )
        assert answer.status_code == 401
        assert answer.json()["error"] == {".tag": "invalid_access_token"}
    again = await _exchange(
        client, grant_type="refresh_token", refresh_token=refresh, client_id="key",
        client_secret="secret",
    )  # fmt: skip
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


async def test_control_revoke_of_an_account(client: httpx.AsyncClient, session: Session) -> None:
    answer = await client.post("/_sandbox/tokens/revoke", json={"account_id": session.account_id})
    assert answer.status_code == 200
    assert (await session.rpc("users/get_current_account")).status_code == 401


async def test_missing_or_malformed_auth_is_400_plain_text(client: httpx.AsyncClient) -> None:
    missing = await client.post("/2/users/get_current_account")
    assert missing.status_code == 400 and missing.headers["content-type"].startswith("text/plain")
    assert "Authorization" in missing.text
    basic = await client.post("/2/users/get_current_account", headers={"Authorization": "Basic x"})
    assert basic.status_code == 400
    unknown = await client.post(
        "/2/users/get_current_account", headers={"Authorization": "Bearer nope"}
    )
    assert unknown.status_code == 401 and unknown.json()["error"][".tag"] == "invalid_access_token"


async def test_authorize_page_allow_and_deny(client: httpx.AsyncClient) -> None:
    await client.post("/_sandbox/apps", json={"app_key": "k", "app_secret": "s"})
    account = (await client.post("/_sandbox/accounts", json={"email": "c@x.io"})).json()
    page = await client.get(
        "/oauth2/authorize",
        params={"client_id": "k", "response_type": "code", "redirect_uri": REDIRECT, "state": "st"},
    )
    assert page.status_code == 200 and account["account_id"] in page.text
    assert 'action="/oauth2/authorize"' in page.text
    form = {"client_id": "k", "redirect_uri": REDIRECT, "state": "st",
            "token_access_type": "offline", "account_id": account["account_id"]}  # fmt: skip
    allowed = await client.post("/oauth2/authorize", data={**form, "decision": "allow"})
    assert allowed.status_code == 302
    location = urlsplit(allowed.headers["location"])
    query = parse_qs(location.query)
    assert location.netloc == "app.example.com" and query["state"] == ["st"]
    token = await _exchange(
        client, grant_type="authorization_code", code=query["code"][0], client_id="k",
        client_secret="s", redirect_uri=REDIRECT,
    )  # fmt: skip
    assert token.status_code == 200 and "refresh_token" in token.json()
    denied = await client.post("/oauth2/authorize", data={**form, "decision": "deny"})
    query = parse_qs(urlsplit(denied.headers["location"]).query)
    assert query["error"] == ["access_denied"] and query["state"] == ["st"]
    unknown = await client.get("/oauth2/authorize", params={"client_id": "nope"})
    assert unknown.status_code == 400


# ------------------------------------------------------------------- list_folder


async def test_list_folder_pages_with_has_more(session: Session) -> None:
    for i in range(5):
        await session.put(f"/dir/f{i}.txt", b"x%d" % i)
    seen: list[str] = []
    page = await session.ok("files/list_folder", {"path": "", "recursive": True, "limit": 2})
    seen += [e["path_lower"] for e in page["entries"]]
    pages = 1
    while page["has_more"]:
        page = await session.ok("files/list_folder/continue", {"cursor": page["cursor"]})
        seen += [e["path_lower"] for e in page["entries"]]
        pages += 1
    assert pages == 3
    assert seen == ["/dir"] + [f"/dir/f{i}.txt" for i in range(5)]
    # the final cursor continues with changes only
    await session.put("/dir/new.txt", b"n")
    changes = await session.ok("files/list_folder/continue", {"cursor": page["cursor"]})
    assert [e["path_lower"] for e in changes["entries"]] == ["/dir/new.txt"]


async def test_paged_listing_is_a_snapshot(session: Session) -> None:
    for i in range(3):
        await session.put(f"/f{i}.txt", b"%d" % i)
    page = await session.ok("files/list_folder", {"path": "", "limit": 2})
    await session.put("/late.txt", b"late")
    rest = await session.ok("files/list_folder/continue", {"cursor": page["cursor"]})
    assert [e["name"] for e in rest["entries"]] == ["f2.txt"] and not rest["has_more"]
    after = await session.ok("files/list_folder/continue", {"cursor": rest["cursor"]})
    assert [e["name"] for e in after["entries"]] == ["late.txt"]


async def test_flat_and_sub_folder_listings(session: Session) -> None:
    await session.put("/a/b/c.txt", b"c")
    await session.put("/a/d.txt", b"d")
    flat = await session.ok("files/list_folder", {"path": "/A"})
    assert [e["path_display"] for e in flat["entries"]] == ["/a/b", "/a/d.txt"]
    missing = await session.rpc("files/list_folder", {"path": "/zz"})
    assert missing.status_code == 409
    assert missing.json() == {
        "error_summary": "path/not_found/..",
        "error": {".tag": "path", "path": {".tag": "not_found"}},
    }
    not_folder = await session.rpc("files/list_folder", {"path": "/a/d.txt"})
    assert not_folder.json()["error"]["path"] == {".tag": "not_folder"}
    slash = await session.rpc("files/list_folder", {"path": "/"})
    assert slash.status_code == 400


async def test_get_latest_cursor_sees_only_later_changes(session: Session) -> None:
    await session.put("/before.txt", b"b")
    cursor = (
        await session.ok("files/list_folder/get_latest_cursor", {"path": "", "recursive": True})
    )["cursor"]
    await session.put("/after.txt", b"a")
    changes = await session.ok("files/list_folder/continue", {"cursor": cursor})
    assert [e["name"] for e in changes["entries"]] == ["after.txt"]


async def test_continue_reports_moves_and_folder_deletes_in_both_modes(
    client: httpx.AsyncClient, session: Session
) -> None:
    await session.put("/p/q/r.txt", b"r")
    latest = await session.ok(
        "files/list_folder/get_latest_cursor", {"path": "", "recursive": True}
    )
    before = await session.ok("files/get_metadata", {"path": "/p/q/r.txt"})
    moved = await client.post(
        f"/_sandbox/accounts/{session.account_id}/move", json={"from_path": "/p", "to_path": "/m"}
    )
    assert moved.status_code == 200
    changes = await session.ok("files/list_folder/continue", {"cursor": latest["cursor"]})
    tags = [(e[".tag"], e["path_lower"]) for e in changes["entries"]]
    assert tags == [("deleted", "/p"), ("folder", "/m"), ("folder", "/m/q"), ("file", "/m/q/r.txt")]
    assert changes["entries"][3]["id"] == before["id"]
    assert "id" not in changes["entries"][0]

    cursor = changes["cursor"]
    await client.delete(f"/_sandbox/accounts/{session.account_id}/files", params={"path": "/m"})
    plain = await session.ok("files/list_folder/continue", {"cursor": cursor})
    assert [(e[".tag"], e["path_lower"]) for e in plain["entries"]] == [("deleted", "/m")]

    settings = await client.post(
        f"/_sandbox/accounts/{session.account_id}/settings",
        json={"report_descendant_deletes": True},
    )
    assert settings.json() == {"report_descendant_deletes": True, "collapse_changes": False}
    every = await session.ok("files/list_folder/continue", {"cursor": cursor})
    assert sorted(e["path_lower"] for e in every["entries"]) == ["/m", "/m/q", "/m/q/r.txt"]
    assert {e[".tag"] for e in every["entries"]} == {"deleted"}


async def test_collapse_changes_setting_lists_each_path_once(
    client: httpx.AsyncClient, session: Session
) -> None:
    settings = f"/_sandbox/accounts/{session.account_id}/settings"
    latest = await session.ok("files/list_folder/get_latest_cursor", {"path": ""})
    await session.put("/a.txt", b"1")
    await session.put("/a.txt", b"2")
    plain = await session.ok("files/list_folder/continue", {"cursor": latest["cursor"]})
    assert [e["name"] for e in plain["entries"]] == ["a.txt", "a.txt"]

    answer = await client.post(settings, json={"collapse_changes": True})
    assert answer.json() == {"report_descendant_deletes": False, "collapse_changes": True}
    collapsed = await session.ok("files/list_folder/continue", {"cursor": latest["cursor"]})
    assert collapsed["entries"] == [plain["entries"][1]]
    for bad in ({"collapse_changes": "yes"}, {"collapse": True}):
        assert (await client.post(settings, json=bad)).status_code == 400
    listed = (await client.get("/_sandbox/accounts")).json()["accounts"]
    assert listed[0]["collapse_changes"] is True


async def test_continue_pages_changes(session: Session) -> None:
    latest = await session.ok("files/list_folder/get_latest_cursor", {"path": "", "limit": 2})
    for i in range(3):
        await session.put(f"/c{i}.txt", b"%d" % i)
    first = await session.ok("files/list_folder/continue", {"cursor": latest["cursor"]})
    assert len(first["entries"]) == 2 and first["has_more"]
    second = await session.ok("files/list_folder/continue", {"cursor": first["cursor"]})
    assert [e["name"] for e in second["entries"]] == ["c2.txt"] and not second["has_more"]


async def test_foreign_or_garbage_cursor_is_400(
    client: httpx.AsyncClient, session: Session
) -> None:
    assert (await session.rpc("files/list_folder/continue", {"cursor": "junk"})).status_code == 400
    other = await connect(client, "zed@example.com")
    cursor = (await other.ok("files/list_folder/get_latest_cursor", {"path": ""}))["cursor"]
    assert (await session.rpc("files/list_folder/continue", {"cursor": cursor})).status_code == 400


# ----------------------------------------------------------------------- longpoll


async def test_longpoll_answers_as_soon_as_something_changes(
    app: Starlette, client: httpx.AsyncClient, session: Session
) -> None:
    cursor = (await session.ok("files/list_folder/get_latest_cursor", {"path": ""}))["cursor"]
    poll = asyncio.create_task(
        client.post("/2/files/list_folder/longpoll", json={"cursor": cursor, "timeout": 30})
    )
    await asyncio.sleep(0.05)
    assert not poll.done()
    await session.put("/wake.txt", b"w")
    answer = await asyncio.wait_for(poll, 2)
    assert answer.status_code == 200 and answer.json() == {"changes": True}
    # already changed: answers at once
    again = await client.post("/2/files/list_folder/longpoll", json={"cursor": cursor})
    assert again.json() == {"changes": True}


async def test_longpoll_times_out_without_changes(
    app: Starlette, client: httpx.AsyncClient, session: Session
) -> None:
    app.state.sandbox.longpoll_time_scale = 0.002  # 30 s -> 60 ms
    cursor = (await session.ok("files/list_folder/get_latest_cursor", {"path": "/"[:0]}))["cursor"]
    await session.put("/elsewhere/x.txt", b"x")  # the folder below is not in scope
    sub = (await session.ok("files/list_folder/get_latest_cursor", {"path": "/elsewhere"}))[
        "cursor"
    ]
    await session.put("/outside.txt", b"o")
    quiet = await client.post("/2/files/list_folder/longpoll", json={"cursor": sub, "timeout": 30})
    assert quiet.json() == {"changes": False}
    busy = await client.post("/2/files/list_folder/longpoll", json={"cursor": cursor})
    assert busy.json() == {"changes": True}
    for bad in (29, 481, "x"):
        wrong = await client.post(
            "/2/files/list_folder/longpoll", json={"cursor": cursor, "timeout": bad}
        )
        assert wrong.status_code == 400


async def test_longpoll_backoff_fault(client: httpx.AsyncClient, session: Session) -> None:
    cursor = (await session.ok("files/list_folder/get_latest_cursor", {"path": ""}))["cursor"]
    await client.post(
        "/_sandbox/faults",
        json={"route": "files/list_folder/longpoll", "status": "backoff", "retry_after": 7},
    )
    answer = await client.post("/2/files/list_folder/longpoll", json={"cursor": cursor})
    assert answer.json() == {"changes": False, "backoff": 7}


# ------------------------------------------------------------------------- faults


async def test_reset_fault_voids_earlier_cursors_only(
    client: httpx.AsyncClient, session: Session
) -> None:
    old = (await session.ok("files/list_folder/get_latest_cursor", {"path": ""}))["cursor"]
    await client.post("/_sandbox/faults", json={"status": "reset"})
    reset = await session.rpc("files/list_folder/continue", {"cursor": old})
    assert reset.status_code == 409
    assert reset.json() == {"error_summary": "reset/..", "error": {".tag": "reset"}}
    polled = await client.post("/2/files/list_folder/longpoll", json={"cursor": old})
    assert polled.status_code == 409 and polled.json()["error"] == {".tag": "reset"}
    fresh = await session.ok("files/list_folder", {"path": "", "recursive": True})
    assert (
        await session.rpc("files/list_folder/continue", {"cursor": fresh["cursor"]})
    ).status_code == 200


async def test_rate_limit_fault_counts_down(client: httpx.AsyncClient, session: Session) -> None:
    await client.post(
        "/_sandbox/faults",
        json={"route": "files/list_folder", "status": 429, "count": 2, "retry_after": 3},
    )
    for _ in range(2):
        limited = await session.rpc("files/list_folder", {"path": ""})
        assert limited.status_code == 429 and limited.headers["retry-after"] == "3"
        assert limited.headers["content-type"] == "application/json"
        assert limited.json() == {
            "error_summary": "too_many_requests/...",
            "error": {"reason": {".tag": "too_many_requests"}, "retry_after": 3},
        }
    assert (await session.rpc("files/list_folder", {"path": ""})).status_code == 200


async def test_fault_routes_any_versions_and_delays(
    client: httpx.AsyncClient, session: Session
) -> None:
    await client.post(
        "/_sandbox/faults", json={"route": "files/delete", "status": 503, "retry_after": 2}
    )
    await session.put("/x.txt", b"x")
    failed = await session.rpc("files/delete_v2", {"path": "/x.txt"})
    assert failed.status_code == 503 and failed.headers["content-type"].startswith("text/plain")
    assert failed.headers["retry-after"] == "2"
    assert (await session.rpc("files/delete_v2", {"path": "/x.txt"})).status_code == 200
    await client.post("/_sandbox/faults", json={"route": "*", "status": 500})
    assert (await session.rpc("users/get_current_account")).status_code == 500
    await client.post("/_sandbox/faults", json={"route": "oauth2/token", "status": 429})
    limited = await _exchange(client, grant_type="refresh_token", refresh_token="x")
    assert limited.status_code == 429
    await client.post(
        "/_sandbox/faults", json={"route": "users/get_current_account", "delay_ms": 150}
    )
    loop = asyncio.get_running_loop()
    started = loop.time()
    assert (await session.rpc("users/get_current_account")).status_code == 200
    assert loop.time() - started >= 0.14
    bad = await client.post("/_sandbox/faults", json={"route": "x", "status": "sometimes"})
    assert bad.status_code == 400


# -------------------------------------------------------------------- file routes


async def test_upload_route_modes_and_errors(session: Session) -> None:
    async def upload(arg: dict[str, Any], content: bytes) -> httpx.Response:
        headers = {
            **session.headers,
            "Dropbox-API-Arg": json.dumps(arg),
            "Content-Type": "application/octet-stream",
        }
        return await session.client.post("/2/files/upload", content=content, headers=headers)

    first = await upload({"path": "/up/a.txt"}, b"one")
    assert first.status_code == 200 and first.headers["content-type"] == "application/json"
    meta = first.json()
    assert ".tag" not in meta and meta["size"] == 3 and len(meta["content_hash"]) == 64
    conflict = await upload({"path": "/up/a.txt", "mode": "add"}, b"two")
    assert conflict.status_code == 409
    assert conflict.json()["error_summary"] == "path/conflict/file/.."
    renamed = await upload({"path": "/up/a.txt", "mode": "add", "autorename": True}, b"two")
    assert renamed.json()["path_display"] == "/up/a (1).txt"
    over = await upload({"path": "/up/a.txt", "mode": {".tag": "overwrite"}}, b"three")
    assert over.json()["id"] == meta["id"] and over.json()["rev"] != meta["rev"]
    mismatch = await upload({"path": "/up/b.txt", "content_hash": "0" * 64}, b"x")
    assert mismatch.json()["error"] == {".tag": "content_hash_mismatch"}
    no_arg = await session.client.post("/2/files/upload", content=b"x", headers=session.headers)
    assert no_arg.status_code == 400


async def test_content_type_is_checked_as_dropbox_does(session: Session) -> None:
    body = json.dumps({"path": ""}).encode()

    async def post(route: str, content_type: str | None, **extra: str) -> httpx.Response:
        headers = {**session.headers, **extra}
        if content_type is not None:
            headers["Content-Type"] = content_type
        return await session.client.post(f"/2/{route}", content=body, headers=headers)

    for good in (
        "application/json",
        "application/json; charset=utf-8",
        "text/plain; charset=dropbox-cors-hack",
    ):
        assert (await post("files/list_folder", good)).status_code == 200, good
    for bad in (None, "application/x-www-form-urlencoded", "application/octet-stream"):
        refused = await post("files/list_folder", bad)
        assert refused.status_code == 400 and refused.headers["content-type"].startswith(
            "text/plain"
        )
        assert 'Bad HTTP "Content-Type" header' in refused.text
    arg = json.dumps({"path": "/ct.txt"})
    wrong = await post("files/upload", "application/json", **{"Dropbox-API-Arg": arg})
    assert wrong.status_code == 400 and "application/octet-stream" in wrong.text
    right = await post("files/upload", "application/octet-stream", **{"Dropbox-API-Arg": arg})
    assert right.status_code == 200
    bare = await session.client.post("/2/users/get_current_account", headers=session.headers)
    assert bare.status_code == 200  # no arguments: no body, no Content-Type needed


async def test_folder_delete_move_and_metadata_routes(session: Session) -> None:
    created = await session.ok("files/create_folder_v2", {"path": "/Work"})
    assert created["metadata"]["name"] == "Work" and ".tag" not in created["metadata"]
    again = await session.rpc("files/create_folder_v2", {"path": "/work"})
    assert again.json()["error_summary"] == "path/conflict/folder/.."
    await session.put("/Work/notes.txt", b"n")
    meta = await session.ok("files/get_metadata", {"path": "/work/NOTES.txt"})
    assert meta[".tag"] == "file" and meta["path_display"] == "/Work/notes.txt"
    by_id = await session.ok("files/get_metadata", {"path": meta["id"]})
    assert by_id == meta
    moved = await session.ok("files/move_v2", {"from_path": "/Work", "to_path": "/Play"})
    assert moved["metadata"][".tag"] == "folder" and moved["metadata"]["path_display"] == "/Play"
    missing = await session.rpc("files/move_v2", {"from_path": "/Work", "to_path": "/x"})
    assert missing.json()["error_summary"] == "from_lookup/not_found/.."
    deleted = await session.ok("files/delete_v2", {"path": "/Play/notes.txt"})
    assert deleted["metadata"]["id"] == meta["id"]
    gone = await session.rpc("files/delete_v2", {"path": "/Play/notes.txt"})
    assert gone.json()["error_summary"] == "path_lookup/not_found/.."
    tomb = await session.ok(
        "files/get_metadata", {"path": "/Play/notes.txt", "include_deleted": True}
    )
    assert tomb[".tag"] == "deleted" and "id" not in tomb
    root = await session.rpc("files/get_metadata", {"path": ""})
    assert root.status_code == 400
    garbage = await session.client.post(
        "/2/files/get_metadata", content=b"{not json", headers=session.headers
    )
    assert garbage.status_code == 400


# ----------------------------------------------------------- mounting, UI, persistence


async def test_mounted_under_a_prefix_builds_links_from_root_path() -> None:
    sandbox_app = create_app()
    parent = Starlette(routes=[Mount("/sandbox", app=sandbox_app)])
    transport = httpx.ASGITransport(app=parent)
    async with httpx.AsyncClient(transport=transport, base_url="http://host") as client:
        await client.post("/sandbox/_sandbox/apps", json={"app_key": "k", "app_secret": "s"})
        page = await client.get("/sandbox/oauth2/authorize", params={"client_id": "k"})
        assert 'action="/sandbox/oauth2/authorize"' in page.text
        ui = await client.get("/sandbox/_sandbox/ui")
        assert 'action="/sandbox/_sandbox/ui/accounts"' in ui.text
        created = await client.post("/sandbox/_sandbox/ui/accounts", data={"email": "m@x.io"})
        assert created.status_code == 303
        assert created.headers["location"].startswith("/sandbox/_sandbox/ui?account_id=dbid%3A")
    await sandbox_app.state.sandbox.aclose()


async def test_ui_changes_files(app: Starlette, client: httpx.AsyncClient) -> None:
    account = (await client.post("/_sandbox/accounts", json={"email": "u@x.io"})).json()
    account_id = account["account_id"]
    tree = app.state.sandbox.trees[account_id]
    upload = await client.post(
        "/_sandbox/ui/upload",
        data={"account_id": account_id, "folder": "docs"},
        files={"file": ("hello.txt", b"hello", "text/plain")},
    )
    assert upload.status_code == 303
    assert tree.lookup("/docs/hello.txt").content == b"hello"
    await client.post("/_sandbox/ui/folder", data={"account_id": account_id, "path": "/Empty"})
    await client.post(
        "/_sandbox/ui/move",
        data={"account_id": account_id, "from_path": "/docs/hello.txt", "to_path": "/hi.txt"},
    )
    await client.post("/_sandbox/ui/delete", data={"account_id": account_id, "path": "/Empty"})
    assert sorted(tree.nodes) == ["/docs", "/hi.txt"]
    page = await client.get("/_sandbox/ui", params={"account_id": account_id})
    assert "hi.txt" in page.text and "Empty" not in page.text
    failed = await client.post(
        "/_sandbox/ui/delete", data={"account_id": account_id, "path": "/no"}
    )
    assert "Failed" in failed.headers["location"]


async def test_ui_page_shows_the_account_and_explains_failures(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    created = await client.post(
        "/_sandbox/ui/accounts", data={"email": "kim@x.io", "display_name": "Kim Doe"}
    )
    assert created.status_code == 303
    account_id = app.state.sandbox.create_account("kim@x.io").account_id
    assert app.state.sandbox.account(account_id).display_name == "Kim Doe"
    await client.put(
        f"/_sandbox/accounts/{account_id}/files",
        params={"path": "/it's here/big.bin"},
        content=b"x" * 3000,
    )
    page = (await client.get("/_sandbox/ui", params={"account_id": account_id})).text
    assert account_id in page and "Kim Doe" in page and "2.9 KB" in page
    assert "1 file, 1 folder" in page
    assert "confirm(&#34;" not in page and "\\u0027s here" in page  # JSON in the attribute
    failed = await client.post(
        "/_sandbox/ui/folder", data={"account_id": account_id, "path": "/it's here/big.bin"}
    )
    location = failed.headers["location"]
    assert "failed=1" in location
    shown = (await client.get(location)).text
    assert 'class="flash bad"' in shown
    assert "Failed to create folder /it&#39;s here/big.bin: conflict/file<" in shown


async def test_state_file_keeps_everything_across_restarts(tmp_path: pathlib.Path) -> None:
    state_file = tmp_path / "sandbox.json"
    first = create_app(state_file=state_file)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=first), base_url="http://sandbox"
    ) as client:
        session = await connect(client)
        await session.put("/keep/me.txt", b"kept")
        latest = {"path": "", "recursive": True}
        cursor = (await session.ok("files/list_folder/get_latest_cursor", latest))["cursor"]
        await client.post(
            f"/_sandbox/accounts/{session.account_id}/settings", json={"collapse_changes": True}
        )
    await asyncio.sleep(0.3)  # saves are coalesced over 0.2 s
    saved = json.loads(state_file.read_text())
    assert [a["email"] for a in saved["accounts"]] == ["ann@example.com"]
    await first.state.sandbox.aclose()

    second = create_app(state_file=state_file)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=second), base_url="http://sandbox"
    ) as client:
        session.client = client
        account = await session.ok("users/get_current_account")
        assert account["account_id"] == session.account_id
        meta = await session.ok("files/get_metadata", {"path": "/keep/me.txt"})
        assert meta["size"] == 4
        await session.put("/keep/more.txt", b"more")
        changes = await session.ok("files/list_folder/continue", {"cursor": cursor})
        assert [e["name"] for e in changes["entries"]] == ["more.txt"]
        again = second.state.sandbox.create_account("ann@example.com")
        assert again.account_id == session.account_id
        assert again.collapse_changes is True
    await second.state.sandbox.aclose()
