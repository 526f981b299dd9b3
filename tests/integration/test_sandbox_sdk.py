"""The sandbox against the official Dropbox SDK, over real HTTPS.

The server runs under uvicorn in a thread with a certificate from a
``trustme`` CA; the SDK reaches it through its host map (every Dropbox host
is the one sandbox) and a session trusting that CA. Every raw JSON answer is
also decoded strictly with the SDK's own validators.
"""

import hashlib
import hmac
import json
import re
import socket
import ssl
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import dropbox
import httpx
import pytest
import trustme
import uvicorn
from dropbox import files, users
from dropbox.content_hash import DropboxContentHasher
from dropbox.content_hash import content_hash as sdk_content_hash
from dropbox.exceptions import ApiError, AuthError, BadInputError, RateLimitError
from dropbox.stone_serializers import json_compat_obj_decode
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route

from relaybox.sandbox.app import create_app
from relaybox.sandbox.state import Sandbox

REDIRECT = "https://app.example.com/auth"


class SandboxDropbox(dropbox.Dropbox):  # type: ignore[misc]
    """The official client with every Dropbox host pointed at the sandbox."""

    def __init__(self, host: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._sandbox_host = host
        self._host_map = {"api": host, "content": host, "notify": host}

    def refresh_access_token(self, host: str | None = None, scope: Any = None) -> None:
        # the SDK binds the real API host as a default argument at import time
        super().refresh_access_token(host=self._sandbox_host, scope=scope)


@dataclass
class Server:
    host: str  # "127.0.0.1:port" or "127.0.0.1:port/prefix", as the SDK wants it
    base: str
    ca_file: str
    ca: trustme.CA
    sandbox: Sandbox
    clients: list[SandboxDropbox] = field(default_factory=list)

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base, verify=ssl.create_default_context(cafile=self.ca_file)
        )

    def sdk(self, **kwargs: Any) -> SandboxDropbox:
        kwargs.setdefault("max_retries_on_error", 0)
        kwargs.setdefault("max_retries_on_rate_limit", 0)
        session = dropbox.create_session(ca_certs=self.ca_file)
        session.trust_env = False  # else REQUESTS_CA_BUNDLE overrides ca_certs
        client = SandboxDropbox(self.host, session=session, **kwargs)
        self.clients.append(client)
        return client

    def close(self) -> None:
        """Close every SDK session: an idle TLS keep-alive holds up uvicorn's shutdown."""
        for client in self.clients:
            client.close()


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> tuple[trustme.CA, str, str]:
    authority = trustme.CA()
    folder = tmp_path_factory.mktemp("tls")
    ca_file, pem = folder / "ca.pem", folder / "server.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    authority.issue_cert("127.0.0.1", "localhost").private_key_and_cert_chain_pem.write_to_path(
        str(pem)
    )
    return authority, str(ca_file), str(pem)


def serve(app: Any, pem: str) -> tuple[uvicorn.Server, threading.Thread, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        ssl_certfile=pem,
        ssl_keyfile=pem,
        log_level="warning",
        lifespan="on",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "uvicorn did not start"
        time.sleep(0.01)
    return server, thread, port


def stop(server: uvicorn.Server, thread: threading.Thread) -> None:
    server.should_exit = True
    thread.join(10)
    assert not thread.is_alive(), "uvicorn did not stop"


@pytest.fixture(scope="module")
def server(ca: tuple[trustme.CA, str, str]) -> Iterator[Server]:
    authority, ca_file, pem = ca
    app = create_app(webhook_delay=0.05)
    running, thread, port = serve(app, pem)
    host = f"127.0.0.1:{port}"
    running_server = Server(host, f"https://{host}", ca_file, authority, app.state.sandbox)
    yield running_server
    running_server.close()
    stop(running, thread)


def connect(server: Server, email: str, offline: bool = True) -> tuple[str, dict[str, Any]]:
    sandbox = server.sandbox
    sandbox.register_app("sdk-key", "sdk-secret", None)
    account = sandbox.create_account(email)
    with server.http() as http:
        code = http.post(
            "/_sandbox/authorize",
            json={
                "app_key": "sdk-key",
                "account_id": account.account_id,
                "redirect_uri": REDIRECT,
                **({"token_access_type": "offline"} if offline else {}),
            },
        ).json()["code"]
        answer = http.post(
            "/oauth2/token",
            data={"grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT},
            auth=("sdk-key", "sdk-secret"),
        )
    assert answer.status_code == 200, answer.text
    return account.account_id, answer.json()


def test_sdk_drives_every_file_route(server: Server) -> None:
    account_id, tokens = connect(server, "sdk-files@example.com")
    dbx = server.sdk(oauth2_access_token=tokens["access_token"])
    me = dbx.users_get_current_account()
    assert me.account_id == account_id and me.email == "sdk-files@example.com"

    folder = dbx.files_create_folder_v2("/Reports").metadata
    assert folder.path_display == "/Reports"
    for i in range(5):
        dbx.files_upload(b"report %d" % i, f"/Reports/r{i}.txt")  # SDK sends content_hash
    meta = dbx.files_get_metadata("/reports/R0.TXT")
    assert isinstance(meta, files.FileMetadata) and meta.size == 8
    assert meta.server_modified.tzinfo is None  # parsed from %Y-%m-%dT%H:%M:%SZ

    names: list[str] = []
    page = dbx.files_list_folder("", recursive=True, limit=2)
    names += [e.name for e in page.entries]
    while page.has_more:
        page = dbx.files_list_folder_continue(page.cursor)
        names += [e.name for e in page.entries]
    assert names == ["Reports"] + [f"r{i}.txt" for i in range(5)]

    latest = dbx.files_list_folder_get_latest_cursor("", recursive=True).cursor
    moved = dbx.files_move_v2("/Reports/r0.txt", "/Archive/r0.txt").metadata
    assert moved.id == meta.id and moved.path_display == "/Archive/r0.txt"
    deleted = dbx.files_delete_v2("/Reports").metadata
    assert isinstance(deleted, files.FolderMetadata)
    changes = dbx.files_list_folder_continue(latest)
    kinds = [(type(e).__name__, e.path_lower) for e in changes.entries]
    assert kinds == [
        ("FolderMetadata", "/archive"),
        ("DeletedMetadata", "/reports/r0.txt"),
        ("FileMetadata", "/archive/r0.txt"),
        ("DeletedMetadata", "/reports"),
    ]
    assert changes.entries[2].id == meta.id


def test_sdk_longpoll_wakes_on_change(server: Server) -> None:
    account_id, tokens = connect(server, "sdk-poll@example.com")
    dbx = server.sdk(oauth2_access_token=tokens["access_token"])
    cursor = dbx.files_list_folder_get_latest_cursor("").cursor

    def change_soon() -> None:
        time.sleep(0.3)
        with server.http() as http:
            http.put(
                f"/_sandbox/accounts/{account_id}/files", params={"path": "/x.txt"}, content=b"x"
            )

    writer = threading.Thread(target=change_soon)
    started = time.monotonic()
    writer.start()
    result = dbx.files_list_folder_longpoll(cursor, timeout=30)
    writer.join()
    assert result.changes is True and time.monotonic() - started < 5
    fresh = dbx.files_list_folder_get_latest_cursor("").cursor
    server.sandbox.longpoll_time_scale = 0.005
    try:
        assert dbx.files_list_folder_longpoll(fresh, timeout=30).changes is False
    finally:
        server.sandbox.longpoll_time_scale = 1.0


def test_sdk_typed_errors(server: Server) -> None:
    _, tokens = connect(server, "sdk-errors@example.com")
    dbx = server.sdk(oauth2_access_token=tokens["access_token"])
    with pytest.raises(ApiError) as missing:
        dbx.files_get_metadata("/does/not/exist")
    assert missing.value.error.is_path() and missing.value.error.get_path().is_not_found()
    with pytest.raises(ApiError) as conflict:
        dbx.files_upload(b"a", "/same.txt")
        dbx.files_upload(b"b", "/same.txt")
    assert conflict.value.error.get_path().reason.get_conflict().is_file()

    with server.http() as http:
        http.post(
            "/_sandbox/faults",
            json={"route": "files/list_folder", "status": 429, "retry_after": 2},
        )
    with pytest.raises(RateLimitError) as limited:
        dbx.files_list_folder("")
    assert limited.value.backoff == 2
    assert limited.value.error.reason.is_too_many_requests()

    bad = server.sdk(oauth2_access_token="sl.not-a-token")
    with pytest.raises(AuthError) as auth:
        bad.users_get_current_account()
    assert auth.value.error.is_invalid_access_token()
    with pytest.raises(BadInputError):
        dbx.files_list_folder("/")


def test_sdk_refreshes_an_expired_token_itself_then_revokes(server: Server) -> None:
    account_id, tokens = connect(server, "sdk-refresh@example.com")
    dbx = server.sdk(
        oauth2_access_token=tokens["access_token"],
        oauth2_refresh_token=tokens["refresh_token"],
        oauth2_access_token_expiration=datetime.utcnow() + timedelta(hours=4),
        app_key="sdk-key",
        app_secret="sdk-secret",
    )
    assert dbx.users_get_current_account().account_id == account_id
    with server.http() as http:
        http.post("/_sandbox/faults", json={"status": "expire_tokens"})
    assert dbx.users_get_current_account().account_id == account_id  # refreshed and retried
    assert dbx._oauth2_access_token != tokens["access_token"]

    dbx.auth_token_revoke()
    stale = server.sdk(oauth2_access_token=dbx._oauth2_access_token)
    with pytest.raises(AuthError) as revoked:
        stale.users_get_current_account()
    assert revoked.value.error.is_invalid_access_token()
    with pytest.raises(AuthError):  # the refresh token died with it: invalid_grant
        dbx.refresh_access_token()


def test_raw_answers_decode_strictly_with_sdk_validators(server: Server) -> None:
    account_id, tokens = connect(server, "sdk-raw@example.com")
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}

    def decode(route: Any, answer: httpx.Response) -> Any:
        assert answer.headers["content-type"] == "application/json"
        if answer.status_code == 409:
            return json_compat_obj_decode(route.error_type, answer.json()["error"], strict=True)
        assert answer.status_code == 200, answer.text
        return json_compat_obj_decode(route.result_type, answer.json(), strict=True)

    with server.http() as http:

        def rpc(name: str, arg: Any, headers: dict[str, str] | None = None) -> httpx.Response:
            return http.post(f"/2/{name}", json=arg, headers=auth if headers is None else headers)

        def upload(arg: Any, content: bytes) -> httpx.Response:
            headers = {**auth, "Dropbox-API-Arg": json.dumps(arg)}
            headers["Content-Type"] = "application/octet-stream"
            return http.post("/2/files/upload", content=content, headers=headers)

        account = decode(
            users.get_current_account, http.post("/2/users/get_current_account", headers=auth)
        )
        assert account.account_id == account_id and len(account_id) == 40
        made = decode(files.create_folder_v2, rpc("files/create_folder_v2", {"path": "/D"}))
        assert made.metadata.id.startswith("id:")
        uploaded = decode(files.upload, upload({"path": "/D/a.txt"}, b"abc"))
        assert len(uploaded.rev) >= 9 and len(uploaded.content_hash) == 64
        decode(files.upload, upload({"path": "/D/b.txt", "mode": "add"}, b"b"))
        listed = decode(
            files.list_folder, rpc("files/list_folder", {"path": "", "recursive": True})
        )
        assert len(listed.entries) == 3
        latest = decode(
            files.list_folder_get_latest_cursor,
            rpc("files/list_folder/get_latest_cursor", {"path": "", "recursive": True}),
        )
        decode(files.get_metadata, rpc("files/get_metadata", {"path": "/D/a.txt"}))
        decode(
            files.move_v2, rpc("files/move_v2", {"from_path": "/D/a.txt", "to_path": "/E/a.txt"})
        )
        decode(files.delete_v2, rpc("files/delete_v2", {"path": "/D"}))
        changes = decode(
            files.list_folder_continue, rpc("files/list_folder/continue", {"cursor": latest.cursor})
        )
        assert any(isinstance(e, files.DeletedMetadata) for e in changes.entries)
        polled = decode(
            files.list_folder_longpoll,
            rpc("files/list_folder/longpoll", {"cursor": latest.cursor}, headers={}),
        )
        assert polled.changes is True
        with_deleted = decode(
            files.list_folder,
            rpc("files/list_folder", {"path": "", "recursive": True, "include_deleted": True}),
        )
        assert any(isinstance(e, files.DeletedMetadata) for e in with_deleted.entries)

        # errors decode with each route's error type
        error = decode(files.get_metadata, rpc("files/get_metadata", {"path": "/nope"}))
        assert error.get_path().is_not_found()
        error = decode(files.delete_v2, rpc("files/delete_v2", {"path": "/nope"}))
        assert error.get_path_lookup().is_not_found()
        error = decode(files.move_v2, rpc("files/move_v2", {"from_path": "/E", "to_path": "/E/x"}))
        assert error.is_cant_move_folder_into_itself()
        error = decode(files.create_folder_v2, rpc("files/create_folder_v2", {"path": "/E"}))
        assert error.get_path().get_conflict().is_folder()
        error = decode(files.upload, upload({"path": "/E/a.txt"}, b"other"))
        assert error.get_path().reason.get_conflict().is_file()
        error = decode(files.list_folder, rpc("files/list_folder", {"path": "/E/a.txt"}))
        assert error.get_path().is_not_folder()
        http.post("/_sandbox/faults", json={"status": "reset"})
        error = decode(
            files.list_folder_continue, rpc("files/list_folder/continue", {"cursor": latest.cursor})
        )
        assert error.is_reset()
        error = decode(
            files.list_folder_longpoll,
            rpc("files/list_folder/longpoll", {"cursor": latest.cursor}, {}),
        )
        assert error.is_reset()
        revoked = http.post("/2/auth/token/revoke", headers=auth)
        assert revoked.status_code == 200 and revoked.headers["content-type"] == "application/json"
        json_compat_obj_decode(dropbox.auth.token_revoke.result_type, revoked.json(), strict=True)


ACCOUNT_ID = re.compile(r"dbid:[A-Za-z0-9_-]{35}")
FILE_ID = re.compile(r"id:[A-Za-z0-9_-]+")
REV = re.compile(r"[0-9a-f]{9,}")
HASH = re.compile(r"[0-9a-f]{64}")
TIME = "%Y-%m-%dT%H:%M:%SZ"


def check_metadata(entry: dict[str, Any]) -> None:
    """Dropbox's metadata rules, on the raw JSON of one entry."""
    assert entry["path_lower"] == entry["path_display"].lower()
    if entry.get(".tag") == "deleted":
        assert set(entry) == {".tag", "name", "path_lower", "path_display"}  # no id
        return
    assert FILE_ID.fullmatch(entry["id"]), entry
    if "rev" in entry:  # a file
        assert REV.fullmatch(entry["rev"]) and HASH.fullmatch(entry["content_hash"])
        for name in ("client_modified", "server_modified"):
            assert datetime.strptime(entry[name], TIME).strftime(TIME) == entry[name]


def test_raw_error_bodies_and_metadata_rules(server: Server) -> None:
    account_id, tokens = connect(server, "sdk-rules@example.com")
    auth = {"Authorization": f"Bearer {tokens['access_token']}"}
    assert ACCOUNT_ID.fullmatch(account_id) and len(account_id) == 40

    with server.http() as http:

        def rpc(name: str, arg: Any, headers: dict[str, str] | None = None) -> httpx.Response:
            return http.post(f"/2/{name}", json=arg, headers=auth if headers is None else headers)

        def error(answer: httpx.Response, status: int, validator: Any) -> Any:
            assert answer.status_code == status, answer.text
            assert answer.headers["content-type"] == "application/json"
            body = answer.json()
            assert set(body) == {"error_summary", "error"}
            return json_compat_obj_decode(validator, body["error"], strict=True)

        # content_hash: Dropbox's block hash, checked against the SDK's own hasher
        big = bytes(range(256)) * (4 * 1024 * 1024 // 256) + b"tail"  # two blocks
        headers = {**auth, "Dropbox-API-Arg": json.dumps({"path": "/Big.bin"})}
        headers["Content-Type"] = "application/octet-stream"
        uploaded = http.post("/2/files/upload", content=big, headers=headers).json()
        hasher = DropboxContentHasher()
        hasher.update(big)
        assert uploaded["content_hash"] == hasher.hexdigest() == sdk_content_hash(big)
        assert uploaded["size"] == len(big)
        check_metadata(uploaded)

        moved = rpc("files/move_v2", {"from_path": "/Big.bin", "to_path": "/Sub/big.bin"})
        after = moved.json()["metadata"]
        assert after["id"] == uploaded["id"] and after["rev"] != uploaded["rev"]
        assert after["content_hash"] == uploaded["content_hash"]
        listed = rpc(
            "files/list_folder", {"path": "", "recursive": True, "include_deleted": True}
        ).json()
        assert {e[".tag"] for e in listed["entries"]} == {"file", "folder", "deleted"}
        for entry in listed["entries"]:
            check_metadata(entry)

        # 409: route errors with error_summary
        missing = rpc("files/get_metadata", {"path": "/nope"})
        assert missing.json()["error_summary"].startswith("path/not_found/")
        assert error(missing, 409, files.GetMetadataError_validator).get_path().is_not_found()
        latest = rpc("files/list_folder/get_latest_cursor", {"path": ""}).json()["cursor"]

        # 429: RateLimitError and Retry-After
        http.post("/_sandbox/faults", json={"route": "*", "status": 429, "retry_after": 4})
        limited = rpc("files/get_metadata", {"path": "/Sub"})
        assert limited.headers["retry-after"] == "4"
        assert limited.json()["error_summary"].startswith("too_many_requests/")
        rate = error(limited, 429, dropbox.auth.RateLimitError_validator)
        assert rate.reason.is_too_many_requests() and rate.retry_after == 4

        # 401: AuthError, invalid then expired
        bad = rpc("users/get_current_account", None, {"Authorization": "Bearer sl.nope"})
        assert error(bad, 401, dropbox.auth.AuthError_validator).is_invalid_access_token()
        assert bad.json()["error_summary"].startswith("invalid_access_token/")
        http.post("/_sandbox/faults", json={"status": "expire_tokens"})
        expired = rpc("users/get_current_account", None)
        assert error(expired, 401, dropbox.auth.AuthError_validator).is_expired_access_token()

        # 400: plain text
        for answer in (
            rpc("users/get_current_account", None, {}),
            http.post("/2/files/list_folder/longpoll", json={"cursor": latest, "timeout": 10}),
        ):
            assert answer.status_code == 400
            assert answer.headers["content-type"].startswith("text/plain")
            assert answer.text.startswith("Error in call to API function")

        # longpoll backoff decodes too
        http.post(
            "/_sandbox/faults",
            json={"route": "files/list_folder/longpoll", "status": "backoff", "retry_after": 9},
        )
        polled = http.post("/2/files/list_folder/longpoll", json={"cursor": latest})
        assert polled.headers["content-type"] == "application/json"
        result = json_compat_obj_decode(
            files.ListFolderLongpollResult_validator, polled.json(), strict=True
        )
        assert result.backoff == 9 and result.changes is False


def test_sdk_sees_an_expired_token_as_auth_error(server: Server) -> None:
    _, tokens = connect(server, "sdk-expired@example.com", offline=False)
    dbx = server.sdk(oauth2_access_token=tokens["access_token"])
    dbx.users_get_current_account()
    with server.http() as http:
        http.post("/_sandbox/faults", json={"status": "expire_tokens"})
    with pytest.raises(AuthError) as expired:
        dbx.users_get_current_account()
    assert expired.value.error.is_expired_access_token()


def test_mounted_sandbox_reaches_a_late_webhook_receiver(ca: tuple[trustme.CA, str, str]) -> None:
    """relaybox's case: mounted at /sandbox, registered before the server listens."""
    authority, ca_file, pem = ca
    received: list[tuple[bytes, str]] = []

    async def hook(request: Request) -> Response:
        if request.method == "GET":
            return PlainTextResponse(request.query_params["challenge"])
        received.append((await request.body(), request.headers["x-dropbox-signature"]))
        return Response(status_code=200)

    sandbox_app = create_app(webhook_delay=0.05)
    sandbox: Sandbox = sandbox_app.state.sandbox
    sandbox.webhooks.retry_base = 0.05
    sandbox.webhooks.verify = ssl.create_default_context(cafile=ca_file)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        yield
        await sandbox.aclose()  # a mounted app's lifespan does not run: the parent closes it

    parent = Starlette(
        routes=[Route("/hook", hook, methods=["GET", "POST"]), Mount("/sandbox", app=sandbox_app)],
        lifespan=lifespan,
    )
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    sandbox.register_app("mk", "ms", f"https://127.0.0.1:{port}/hook")  # nothing listens yet
    config = uvicorn.Config(parent, port=port, ssl_certfile=pem, ssl_keyfile=pem, log_level="debug")
    running = uvicorn.Server(config)
    thread = threading.Thread(target=running.run, daemon=True)
    thread.start()
    host = f"127.0.0.1:{port}/sandbox"
    mounted = Server(host, f"https://{host}", ca_file, authority, sandbox)
    try:
        wait_for(lambda: running.started)
        account_id, tokens = connect(mounted, "mounted@example.com", offline=False)
        sandbox.account(account_id).authorized_apps.add("mk")
        dbx = mounted.sdk(oauth2_access_token=tokens["access_token"])
        dbx.files_upload(b"hello", "/hello.txt")
        wait_for(lambda: bool(received))
        body, sig = received[0]
        assert json.loads(body)["list_folder"]["accounts"] == [account_id]
        assert sig == hmac.new(b"ms", body, hashlib.sha256).hexdigest()
        with mounted.http() as http:
            page = http.get("/oauth2/authorize", params={"client_id": "sdk-key"})
        assert 'action="/sandbox/oauth2/authorize"' in page.text
    finally:
        mounted.close()
        stop(running, thread)


def wait_for(check: Callable[[], bool], seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)
