"""The Google Drive sandbox against the official ``google-api-python-client``.

The client is unmodified: ``build("drive", "v3", static_discovery=True)`` pointed at the
sandbox only through ``client_options={"api_endpoint": ...}``, with ``google-auth``
credentials whose ``token_uri`` is the sandbox's. The sandbox runs under uvicorn in a
thread with an injected clock (so tokens and channels expire when a test moves time, not
after a wait); push notifications go to a real HTTP receiver in another thread. Every
answer the client gets is also checked against the client's own discovery document.
"""

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import googleapiclient
import httplib2
import httpx
import pytest
import uvicorn
from google.auth.exceptions import RefreshError
from google.auth.transport.requests import Request as GoogleRequest
from google.oauth2.credentials import Credentials
from google_auth_httplib2 import AuthorizedHttp
from googleapiclient.discovery import build
from googleapiclient.errors import HttpError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relaybox.connectors.googledrive.client import (
    FILE_FIELDS,
    WATCH_PARAMS,
    changes_list_params,
    files_get_params,
    files_list_params,
    watch_body,
)
from relaybox.gdrive_sandbox.app import create_app
from relaybox.gdrive_sandbox.model import FOLDER
from relaybox.gdrive_sandbox.state import DriveSandbox
from tests.support.gdrive import DRIVE_SCOPE, drive_client, grant

DISCOVERY = json.loads(
    (Path(googleapiclient.__file__).parent / "discovery_cache/documents/drive.v3.json").read_text()
)


class ManualClock:
    """The sandbox's clock: real time when the suite starts, then moved by hand."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def serve_in_thread(app: Any) -> tuple[uvicorn.Server, threading.Thread, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = int(sock.getsockname()[1])
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    started = threading.Event()

    def wait_started() -> None:
        while not server.started and thread.is_alive():
            started.wait(0.01)

    wait_started()
    assert server.started, "uvicorn did not start"
    return server, thread, port


@dataclass
class Push:
    headers: dict[str, str]
    body: bytes


@dataclass
class Receiver:
    """A watch address: records every notification POSTed to it."""

    pushes: list[Push] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)
    url: str = ""

    def app(self) -> Starlette:
        async def notify(request: Request) -> Response:
            push = Push(dict(request.headers), await request.body())
            with self.arrived:
                self.pushes.append(push)
                self.arrived.notify_all()
            return Response(status_code=200)

        return Starlette(routes=[Route("/notify", notify, methods=["POST"])])

    def of(self, channel_id: str) -> list[Push]:
        with self.arrived:
            return [p for p in self.pushes if p.headers["x-goog-channel-id"] == channel_id]

    def wait_for(self, channel_id: str, count: int) -> list[Push]:
        """The first ``count`` pushes of a channel, once they have arrived."""
        with self.arrived:
            assert self.arrived.wait_for(
                lambda: (
                    len([p for p in self.pushes if p.headers["x-goog-channel-id"] == channel_id])
                    >= count
                ),
                timeout=15,
            ), f"{channel_id}: {len(self.of(channel_id))} pushes, waited for {count}"
        return self.of(channel_id)[:count]


@dataclass
class Sandbox:
    base: str
    sandbox: DriveSandbox
    clock: ManualClock
    receiver: Receiver

    def control(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, timeout=10)

    @property
    def api_endpoint(self) -> str:
        return f"{self.base}/drive/v3/"


@pytest.fixture(scope="module")
def served() -> Iterator[Sandbox]:
    clock = ManualClock()
    app = create_app(push_delay=0, clock=clock)
    app.state.sandbox.push.retry_base = 0.01
    receiver = Receiver()
    servers = [serve_in_thread(app), serve_in_thread(receiver.app())]
    receiver.url = f"http://127.0.0.1:{servers[1][2]}/notify"
    try:
        yield Sandbox(f"http://127.0.0.1:{servers[0][2]}", app.state.sandbox, clock, receiver)
    finally:
        for server, thread, _ in servers:
            server.should_exit = True
            thread.join(timeout=10)


@dataclass
class Connected:
    """An app, an account and the client relaybox would hold for it."""

    served: Sandbox
    client_id: str
    client_secret: str
    permission_id: str
    email: str
    credentials: Credentials
    drive: Any

    def control(self) -> httpx.Client:
        return self.served.control()

    def make(self, name: str, *, parent: str | None = None, folder: bool = False) -> str:
        """A file or folder, made through the control API (as someone in Drive's UI)."""
        body: dict[str, Any] = {"name": name, "folder": folder}
        if parent:
            body["parent"] = parent
        with self.control() as http:
            answer = http.post(f"/_sandbox/accounts/{self.permission_id}/files", json=body)
        assert answer.status_code == 200, answer.text
        return str(answer.json()["id"])


def connect(served: Sandbox, email: str) -> Connected:
    """Register an app, let ``email`` consent (offline access) and build the client."""
    with served.control() as http:
        granted = grant(http, email)
    # The scope string as google-auth-oauthlib reads it (space-separated, here one).
    assert granted.tokens["token_type"] == "Bearer" and granted.tokens["scope"] == [DRIVE_SCOPE]
    drive, credentials = drive_client(served.base, granted)
    return Connected(
        served,
        granted.client_id,
        granted.client_secret,
        granted.permission_id,
        email,
        credentials,
        drive,
    )


@pytest.fixture
def user(served: Sandbox) -> Connected:
    return connect(served, f"{uuid.uuid4().hex[:10]}@example.com")


# ------------------------------------------------- the discovery document's shapes


def conforms(value: Any, schema: dict[str, Any], where: str = "") -> None:
    """``value`` has only properties the discovery document names, with its JSON types
    (``int64`` as a string, as Google encodes it)."""
    if "$ref" in schema:
        conforms(value, DISCOVERY["schemas"][schema["$ref"]], where)
        return
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        assert isinstance(value, dict), where
        properties = schema.get("properties", {})
        for key, item in value.items():
            if properties:
                assert key in properties, f"{where}.{key} is not in the discovery document"
                conforms(item, properties[key], f"{where}.{key}")
            elif "additionalProperties" in schema:
                conforms(item, schema["additionalProperties"], f"{where}.{key}")
    elif kind == "array":
        assert isinstance(value, list), where
        for index, item in enumerate(value):
            conforms(item, schema["items"], f"{where}[{index}]")
    elif kind == "string":
        assert isinstance(value, str), f"{where}: {value!r} is not a string"
        if schema.get("format") == "int64":
            assert value.lstrip("-").isdigit(), where
    elif kind == "boolean":
        assert isinstance(value, bool), where
    elif kind == "integer":
        assert isinstance(value, int) and not isinstance(value, bool), where


def shaped(value: Any, schema_name: str) -> Any:
    conforms(value, {"$ref": schema_name}, schema_name)
    return value


def reason(error: HttpError) -> str:
    return str(error.error_details[0]["reason"])


# ------------------------------------------------------------------ the account


def test_about_names_the_account(user: Connected) -> None:
    about = user.drive.about().get(fields="user(permissionId,emailAddress,displayName)").execute()
    assert about == {
        "user": {
            "permissionId": user.permission_id,
            "emailAddress": user.email,
            "displayName": user.email.split("@")[0].title(),
        }
    }
    shaped(user.drive.about().get(fields="*").execute(), "About")
    with pytest.raises(HttpError) as missing:
        user.drive.about().get().execute()
    assert missing.value.status_code == 400 and reason(missing.value) == "required"
    assert missing.value.error_details[0]["location"] == "fields"


def test_files_list_pages_and_get_reads_one(user: Connected) -> None:
    folder = user.make("Reports", folder=True)
    made = [user.make(f"q{n}.txt", parent=folder) for n in range(1, 4)]
    trashed = user.make("old.txt")
    user.drive.files().update(fileId=trashed, body={"trashed": True}).execute()
    fields = (
        "nextPageToken,files(id,name,mimeType,parents,trashed,version,md5Checksum,modifiedTime)"
    )
    request = user.drive.files().list(
        q="trashed = false", pageSize=2, orderBy="name", fields=fields
    )
    pages = []
    while request is not None:
        page = shaped(request.execute(), "FileList")
        pages.append(page)
        request = user.drive.files().list_next(request, page)
    assert [len(p["files"]) for p in pages] == [2, 2]
    listed = [f for p in pages for f in p["files"]]
    assert [f["name"] for f in listed] == ["q1.txt", "q2.txt", "q3.txt", "Reports"]
    assert {f["id"] for f in listed} == {folder, *made}
    assert all(f["parents"] == [folder] and not f["trashed"] for f in listed[:3])
    assert listed[3]["mimeType"] == FOLDER and "md5Checksum" not in listed[3]
    everything = user.drive.files().list(fields="files(id)").execute()["files"]
    assert trashed in {f["id"] for f in everything}  # files.list shows the trash unless asked
    inside = user.drive.files().list(q=f"'{folder}' in parents and name contains 'q2'").execute()
    assert inside == {
        "kind": "drive#fileList",
        "incompleteSearch": False,
        "files": [
            {"kind": "drive#file", "id": made[1], "name": "q2.txt", "mimeType": "text/plain"}
        ],
    }

    got = user.drive.files().get(fileId=made[0], fields="*").execute()
    assert shaped(got, "File")["name"] == "q1.txt" and got["md5Checksum"]
    assert user.drive.files().get(fileId="root", fields="name,mimeType").execute() == {
        "name": "My Drive",
        "mimeType": FOLDER,
    }
    with pytest.raises(HttpError) as missing:
        user.drive.files().get(fileId="1NoSuchFile").execute()
    assert missing.value.status_code == 404
    assert json.loads(missing.value.content) == {
        "error": {
            "code": 404,
            "message": "File not found: 1NoSuchFile.",
            "errors": [
                {
                    "message": "File not found: 1NoSuchFile.",
                    "domain": "global",
                    "reason": "notFound",
                    "location": "fileId",
                    "locationType": "parameter",
                }
            ],
        }
    }
    with pytest.raises(HttpError) as selection:
        user.drive.files().get(fileId=made[0], fields="id,nonsense").execute()
    assert selection.value.status_code == 400 and reason(selection.value) == "invalidParameter"


def test_files_get_reads_the_root_by_its_alias_and_a_folder_as_relaybox_asks(
    user: Connected,
) -> None:
    outer = user.make("Photos", folder=True)
    inner = user.make("2026", parent=outer, folder=True)
    # "root" names My Drive's folder; its id is what top-level items name as their parent.
    root = user.drive.files().get(fileId="root", **files_get_params("id")).execute()
    assert set(root) == {"id"} and root["id"] != "root"
    got = user.drive.files().get(fileId=outer, **files_get_params()).execute()
    assert got == {
        "id": outer,
        "name": "Photos",
        "mimeType": FOLDER,
        "parents": [root["id"]],
        "trashed": False,
    }
    got = user.drive.files().get(fileId=inner, **files_get_params()).execute()
    assert got["parents"] == [outer] and got["name"] == "2026"


# ---------------------------------------------------------------------- changes


def all_changes(user: Connected, token: str, **options: Any) -> tuple[list[Any], list[Any]]:
    """Every page of ``changes.list`` from ``token``: (pages, new start page token)."""
    fields = (
        "nextPageToken,newStartPageToken,kind,"
        "changes(kind,changeType,time,removed,fileId,"
        "file(id,name,mimeType,parents,trashed,version,md5Checksum,modifiedTime))"
    )
    request = user.drive.changes().list(pageToken=token, fields=fields, **options)
    pages = []
    while request is not None:
        page = shaped(request.execute(), "ChangeList")
        pages.append(page)
        request = user.drive.changes().list_next(request, page)
    return pages, [c for p in pages for c in p["changes"]]


def test_changes_list_pages_through_creates_moves_trash_and_removals(user: Connected) -> None:
    start = shaped(user.drive.changes().getStartPageToken().execute(), "StartPageToken")
    token = start["startPageToken"]
    drive = user.drive.files()
    folder = drive.create(body={"name": "Projects", "mimeType": FOLDER}).execute()["id"]
    inner = drive.create(body={"name": "plan.txt", "parents": [folder]}).execute()["id"]
    loose = drive.create(body={"name": "loose.txt"}, fields="id,parents").execute()
    drive.update(fileId=loose["id"], addParents=folder, removeParents=loose["parents"][0]).execute()
    drive.update(fileId=loose["id"], body={"name": "moved.txt"}).execute()
    gone = drive.create(body={"name": "gone.txt"}).execute()["id"]
    drive.update(fileId=gone, body={"trashed": True}).execute()
    doomed = drive.create(body={"name": "Doomed", "mimeType": FOLDER}).execute()["id"]
    below = drive.create(body={"name": "below.txt", "parents": [doomed]}).execute()["id"]
    assert drive.delete(fileId=doomed).execute() == ""  # 204, no content

    pages, changes = all_changes(user, token, pageSize=2)
    assert len(pages) == 3 and all("nextPageToken" in p for p in pages[:-1])
    assert "newStartPageToken" in pages[-1] and "nextPageToken" not in pages[-1]
    assert all(c["kind"] == "drive#change" and c["changeType"] == "file" for c in changes)
    # each file once, in its latest state, in the order of its latest change
    assert [c["fileId"] for c in changes] == [folder, inner, loose["id"], gone, doomed, below]
    by_id = {c["fileId"]: c for c in changes}
    assert by_id[loose["id"]]["file"]["name"] == "moved.txt"
    assert by_id[loose["id"]]["file"]["parents"] == [folder]
    assert by_id[gone]["removed"] is False and by_id[gone]["file"]["trashed"] is True
    assert by_id[doomed] == {
        "kind": "drive#change",
        "changeType": "file",
        "time": by_id[doomed]["time"],
        "removed": True,
        "fileId": doomed,
    }
    assert by_id[below]["removed"] is True and "file" not in by_id[below]

    _, kept = all_changes(user, token, includeRemoved=False, pageSize=100)
    assert [c["fileId"] for c in kept] == [folder, inner, loose["id"], gone]
    newest = pages[-1]["newStartPageToken"]
    assert all_changes(user, newest)[1] == []
    assert user.drive.changes().getStartPageToken().execute()["startPageToken"] == newest


def test_a_page_token_drive_did_not_issue_is_invalid(user: Connected) -> None:
    token = user.drive.changes().getStartPageToken().execute()["startPageToken"]
    with pytest.raises(HttpError) as bogus:
        user.drive.changes().list(pageToken="BOGUS").execute()
    assert bogus.value.status_code == 400
    assert bogus.value.error_details == [
        {
            "message": "Invalid Value",
            "domain": "global",
            "reason": "invalid",
            "location": "pageToken",
            "locationType": "parameter",
        }
    ]
    with user.control() as http:
        http.post("/_sandbox/faults", json={"status": "reset", "permission_id": user.permission_id})
    with pytest.raises(HttpError) as voided:
        user.drive.changes().list(pageToken=token).execute()
    assert voided.value.status_code == 400 and reason(voided.value) == "invalid"
    fresh = user.drive.changes().getStartPageToken().execute()["startPageToken"]
    assert user.drive.changes().list(pageToken=fresh).execute()["changes"] == []


# ------------------------------------------------------------------------ tokens


def test_an_expired_access_token_is_refreshed_through_the_token_uri(user: Connected) -> None:
    first = user.credentials.token
    user.served.clock.advance(3600)  # the sandbox's access tokens live 3599 s
    # google-auth still thinks the token valid (its clock did not move): the sandbox
    # answers 401 and the client refreshes through token_uri, then repeats the call
    about = user.drive.about().get(fields="user(permissionId)").execute()
    assert about["user"]["permissionId"] == user.permission_id
    refreshed = user.credentials.token
    assert refreshed != first and user.credentials.refresh_token is not None

    # credentials that know they expired refresh before the call
    user.credentials.expiry = datetime.now(UTC).replace(tzinfo=None) - timedelta(seconds=1)
    user.drive.changes().getStartPageToken().execute()
    assert user.credentials.token not in (first, refreshed)
    never_refreshing = AuthorizedHttp(
        Credentials(token=first), http=httplib2.Http(), refresh_status_codes=()
    )
    stale_client = build(
        "drive",
        "v3",
        http=never_refreshing,
        static_discovery=True,
        client_options={"api_endpoint": user.served.api_endpoint},
    )
    with pytest.raises(HttpError) as stale:
        stale_client.about().get(fields="user").execute()
    assert stale.value.status_code == 401
    assert json.loads(stale.value.content)["error"]["status"] == "UNAUTHENTICATED"
    assert reason(stale.value) == "authError"


def test_a_revoked_grant_refuses_calls_and_refreshes(user: Connected) -> None:
    # Google's documented revocation: POST https://oauth2.googleapis.com/revoke?token=...
    transport = GoogleRequest()
    answer = transport(
        url=f"{user.served.base}/revoke?token={user.credentials.token}",
        method="POST",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert answer.status == 200
    again = transport(
        url=f"{user.served.base}/revoke?token={user.credentials.token}",
        method="POST",
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert again.status == 400 and json.loads(again.data)["error"] == "invalid_token"
    with pytest.raises(RefreshError) as refused:
        user.drive.about().get(fields="user").execute()
    assert "invalid_grant" in str(refused.value)


# ---------------------------------------------------------------------- faults


def fault(user: Connected, **body: Any) -> None:
    with user.control() as http:
        assert http.post("/_sandbox/faults", json=body).status_code == 200


def test_faults_answer_google_errors_the_client_recognizes(user: Connected) -> None:
    fault(user, method="changes.getStartPageToken", status=403, reason="userRateLimitExceeded")
    with pytest.raises(HttpError) as limited:
        user.drive.changes().getStartPageToken().execute()
    assert limited.value.status_code == 403 and reason(limited.value) == "userRateLimitExceeded"
    assert limited.value.error_details[0]["domain"] == "usageLimits"

    fault(user, method="drive.changes.list", status=503, retry_after=7)
    token = user.drive.changes().getStartPageToken().execute()["startPageToken"]
    with pytest.raises(HttpError) as down:
        user.drive.changes().list(pageToken=token).execute()
    assert down.value.status_code == 503 and reason(down.value) == "backendError"
    assert down.value.resp["retry-after"] == "7"

    # the client's own retry logic reads the bodies as Google's: a rate limit (403 with
    # the reason, or 429) and a 5xx are retried; its backoff is set to zero here
    for status, why in ((403, "rateLimitExceeded"), (429, None), (500, None)):
        fault(user, method="about.get", status=status, reason=why)
        request = user.drive.about().get(fields="user(permissionId)")
        request._rand = lambda: 0.0
        assert request.execute(num_retries=1)["user"]["permissionId"] == user.permission_id


# ------------------------------------------------------------------- push channels


def watch(user: Connected, channel_id: str, **extra: Any) -> dict[str, Any]:
    token = user.drive.changes().getStartPageToken().execute()["startPageToken"]
    body = {
        "id": channel_id,
        "type": "web_hook",
        "address": user.served.receiver.url,
        "token": f"secret-of-{channel_id}",
        **extra,
    }
    return shaped(user.drive.changes().watch(pageToken=token, body=body).execute(), "Channel")


def test_a_watch_channel_pushes_sync_then_changes_until_stopped(user: Connected) -> None:
    receiver, clock = user.served.receiver, user.served.clock
    watched = watch(user, "chan-a")
    witness = watch(user, "chan-witness")  # a live channel on the same account
    assert watched["kind"] == "api#channel" and watched["id"] == "chan-a"
    assert watched["token"] == "secret-of-chan-a" and watched["resourceId"]
    assert int(watched["expiration"]) == int((clock.now + 3600) * 1000)
    assert watched["resourceUri"].startswith(f"{user.served.api_endpoint}changes?")

    sync = receiver.wait_for("chan-a", 1)[0]
    assert sync.body == b""
    assert {k: v for k, v in sync.headers.items() if k.startswith("x-goog-")} == {
        "x-goog-channel-id": "chan-a",
        "x-goog-channel-token": "secret-of-chan-a",
        "x-goog-channel-expiration": sync.headers["x-goog-channel-expiration"],
        "x-goog-resource-id": watched["resourceId"],
        "x-goog-resource-uri": watched["resourceUri"],
        "x-goog-resource-state": "sync",
        "x-goog-message-number": "1",
    }
    expires = datetime.strptime(
        sync.headers["x-goog-channel-expiration"], "%a, %d %b %Y %H:%M:%S GMT"
    )
    assert int(expires.replace(tzinfo=UTC).timestamp()) == int(watched["expiration"]) // 1000

    user.drive.files().create(body={"name": "one.txt"}).execute()
    receiver.wait_for("chan-a", 2)
    user.make("two.txt")  # a change made outside the client pushes as well
    pushes = receiver.wait_for("chan-a", 3)
    assert [p.headers["x-goog-resource-state"] for p in pushes] == ["sync", "change", "change"]
    numbers = [int(p.headers["x-goog-message-number"]) for p in pushes]
    assert numbers == sorted(numbers) and len(set(numbers)) == 3
    assert all(p.headers["x-goog-channel-token"] == "secret-of-chan-a" for p in pushes)

    with pytest.raises(HttpError) as twice:
        watch(user, "chan-a")
    assert twice.value.status_code == 400 and reason(twice.value) == "channelIdNotUnique"
    with pytest.raises(HttpError) as unknown:
        user.drive.channels().stop(body={"id": "chan-a", "resourceId": "nope"}).execute()
    assert unknown.value.status_code == 404

    assert (
        user.drive.channels()
        .stop(body={"id": "chan-a", "resourceId": watched["resourceId"]})
        .execute()
        == ""
    )
    witnessed = len(receiver.wait_for("chan-witness", 3))
    user.make("three.txt")
    receiver.wait_for("chan-witness", witnessed + 1)  # the change was pushed...
    assert len(receiver.of("chan-a")) == 3  # ...but not to the stopped channel
    with pytest.raises(HttpError) as stopped:
        user.drive.channels().stop(
            body={"id": "chan-a", "resourceId": watched["resourceId"]}
        ).execute()
    assert stopped.value.status_code == 404
    assert witness["id"] == "chan-witness"


def test_a_channel_pushes_nothing_after_it_expires(user: Connected) -> None:
    receiver, clock = user.served.receiver, user.served.clock
    soon = int((clock.now + 60) * 1000)
    short = watch(user, "chan-short", expiration=str(soon))
    assert short["expiration"] == str(soon)
    watch(user, "chan-long")
    receiver.wait_for("chan-short", 1)
    user.make("before.txt")
    receiver.wait_for("chan-short", 2)
    receiver.wait_for("chan-long", 2)

    clock.advance(61)
    user.make("after.txt")
    receiver.wait_for("chan-long", 3)  # the change was pushed to the live channel...
    assert len(receiver.of("chan-short")) == 2  # ...and not to the expired one
    with user.control() as http:
        states = {c["id"]: c["state"] for c in http.get("/_sandbox/channels").json()["channels"]}
    assert states["chan-short"] == "expired" and states["chan-long"] == "live"

    far = int((clock.now + 30 * 86400) * 1000)
    capped = watch(user, "chan-far", expiration=far)
    assert int(capped["expiration"]) == int((clock.now + 7 * 86400) * 1000)  # a week at most


# ------------------------------------------- relaybox's own calls, with the official client


def test_relaybox_calls_run_with_the_official_client(user: Connected) -> None:
    """Each Drive call relaybox makes, with the very parameters its client sends
    (relaybox/connectors/googledrive/client.py), made by the official client."""
    about = user.drive.about().get(fields="user(permissionId,emailAddress,displayName)")
    assert shaped(about.execute(), "About")["user"]["permissionId"] == user.permission_id
    start = user.drive.changes().getStartPageToken().execute()["startPageToken"]
    folder = user.make("Reports", folder=True)
    user.make("q1.txt", parent=folder)
    user.make("notes.txt")

    listed = user.drive.files().list(**files_list_params(None, 2)).execute()
    shaped(listed, "FileList")
    assert listed["files"][0]["id"] == folder  # folders first
    assert listed["files"][0]["mimeType"] == FOLDER
    rest = user.drive.files().list(**files_list_params(listed["nextPageToken"], 2)).execute()
    names = [f["name"] for f in listed["files"] + rest["files"]]
    assert sorted(names) == ["Reports", "notes.txt", "q1.txt"]
    assert all(set(f) <= set(FILE_FIELDS.split(",")) for f in listed["files"])

    changed = user.drive.changes().list(**changes_list_params(start, 1000)).execute()
    shaped(changed, "ChangeList")
    assert len(changed["changes"]) == 3 and "newStartPageToken" in changed
    assert {
        c["file"]["parents"][0] for c in changed["changes"] if c["file"]["name"] == "q1.txt"
    } == {folder}

    expiration = datetime.fromtimestamp(user.served.clock.now + 3600, UTC)
    body = watch_body("relaybox-chan", "secret-token", user.served.receiver.url, expiration)
    params = {"pageToken": changed["newStartPageToken"], **WATCH_PARAMS}
    channel = shaped(user.drive.changes().watch(body=body, **params).execute(), "Channel")
    assert channel["id"] == "relaybox-chan" and channel["resourceId"]
    assert int(channel["expiration"]) <= int(expiration.timestamp() * 1000)
    [sync] = user.served.receiver.wait_for("relaybox-chan", 1)
    assert sync.headers["x-goog-channel-token"] == "secret-token"
    stop = {"id": channel["id"], "resourceId": channel["resourceId"]}
    assert user.drive.channels().stop(body=stop).execute() == ""
