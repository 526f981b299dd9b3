"""How relaybox serves the Google Drive sandbox: beside the Dropbox one, under `/gdrive` of
`relaybox sandbox` and `/sandbox/gdrive` of `relaybox serve --sandbox`, behind the same
access policy (Host names, the control token), body limits and SSRF-guarded sender, with its
state in a file of its own."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route

from relaybox.cli import GDRIVE_CLIENT_ID, SANDBOX_EMAIL, _with_sandbox, sandbox_app_secret
from relaybox.config import Settings
from relaybox.gdrive_sandbox.app import create_app as create_gdrive
from relaybox.gdrive_sandbox.state import WatchRequest
from relaybox.sandbox.app import create_app as create_dropbox
from relaybox.sandbox_serving import both, exposure
from tests.support.gdrive import DRIVE_SCOPE, REDIRECT, drive_client, grant
from tests.support.servers import eventually, free_port, serving

TOKEN = "sandbox-control-token-0123456789"


@dataclass
class Process:
    base: str
    process: subprocess.Popen[bytes]

    def http(self, **headers: str) -> httpx.Client:
        bearer = {"Authorization": f"Bearer {TOKEN}"}
        return httpx.Client(base_url=self.base, timeout=10, headers={**bearer, **headers})


def start_sandbox(state_file: Path) -> Process:
    port = free_port()
    command = [sys.executable, "-m", "relaybox", "sandbox", "--port", str(port)]
    command += ["--state-file", str(state_file)]
    env = {**os.environ, "RELAYBOX_SANDBOX_TOKEN": TOKEN}
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    running = Process(f"http://127.0.0.1:{port}", process)
    deadline = time.monotonic() + 30
    with running.http() as http:
        while True:
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                if http.get("/gdrive/_sandbox/accounts").status_code == 200:
                    return running
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "the sandbox did not start"
            time.sleep(0.1)


def stop(running: Process) -> None:
    running.process.terminate()
    try:
        running.process.wait(10)
    except subprocess.TimeoutExpired:
        running.process.kill()
        running.process.wait()
    if running.process.stderr is not None:
        running.process.stderr.close()


@pytest.fixture
def state_file(tmp_path: Path) -> Path:
    return tmp_path / "state" / "sandbox.json"


@pytest.fixture
def sandbox_process(state_file: Path) -> Iterator[Process]:
    running = start_sandbox(state_file)
    try:
        yield running
    finally:
        stop(running)


def connect(base: str, http: httpx.Client) -> tuple[Any, str]:
    """An app, an account with a file, and the official client for it."""
    granted = grant(http, "cli@example.com")
    files = f"/_sandbox/accounts/{granted.permission_id}/files"
    assert http.post(files, json={"name": "kept.txt", "content": "hi"}).status_code == 200
    return drive_client(base, granted)[0], granted.permission_id


def test_relaybox_sandbox_serves_both_and_keeps_google_state_in_its_own_file(
    sandbox_process: Process, state_file: Path
) -> None:
    google = f"{sandbox_process.base}/gdrive"
    with httpx.Client(base_url=google, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
        client, permission_id = connect(google, http)
    about = client.about().get(fields="user(permissionId,emailAddress)").execute()
    assert about == {"user": {"permissionId": permission_id, "emailAddress": "cli@example.com"}}
    listed = client.files().list(fields="files(name)").execute()
    assert listed == {"files": [{"name": "kept.txt"}]}

    with sandbox_process.http() as http:  # the Dropbox sandbox still answers at the root
        assert http.get("/_sandbox/accounts").json() == {"accounts": []}
        home = http.get("/gdrive/", follow_redirects=False)
        assert home.status_code == 302 and home.headers["location"] == "/gdrive/_sandbox/ui"
    with httpx.Client(base_url=sandbox_process.base, timeout=10) as anonymous:
        assert anonymous.get("/gdrive/_sandbox/accounts").status_code == 401
        assert anonymous.get("/_sandbox/accounts").status_code == 401
        rebound = anonymous.get(
            "/gdrive/drive/v3/about",
            headers={"Host": "rebound.example", "Authorization": f"Bearer {TOKEN}"},
        )
        assert rebound.status_code == 403
    with sandbox_process.http() as http:
        page = http.get("/gdrive/_sandbox/ui", params={"account": permission_id})
    assert page.status_code == 200 and "kept.txt" in page.text

    stop(sandbox_process)
    gdrive_file = state_file.with_name("sandbox-gdrive.json")
    assert gdrive_file.exists() and not state_file.exists()  # Dropbox's had nothing to keep
    again = start_sandbox(state_file)
    try:
        with again.http() as http:
            accounts = http.get("/gdrive/_sandbox/accounts").json()["accounts"]
            assert [a["permission_id"] for a in accounts] == [permission_id]
            files = http.get(f"/gdrive/_sandbox/accounts/{permission_id}/files").json()["files"]
            assert [(f["name"], f["path"]) for f in files] == [("kept.txt", "/kept.txt")]
    finally:
        stop(again)


# ------------------------------------------------------------- serve --sandbox


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, Settings]]:
    settings = Settings(data_dir=tmp_path)
    _, mounts, on_ready, on_stop, _ = _with_sandbox(settings, "127.0.0.1", False)
    await on_ready(None)
    parent = Starlette(routes=[Mount(path, app) for path, app in mounts.items()])
    transport = httpx.ASGITransport(app=parent)
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
            yield http, settings
    finally:
        await on_stop(None)


async def test_serve_sandbox_mounts_google_drive_with_a_seeded_app_and_account(
    served: tuple[httpx.AsyncClient, Settings],
) -> None:
    http, settings = served
    google = "/sandbox/gdrive"
    accounts = (await http.get(f"{google}/_sandbox/accounts")).json()["accounts"]
    assert [a["email"] for a in accounts] == [SANDBOX_EMAIL]
    dropbox = (await http.get("/sandbox/_sandbox/accounts")).json()["accounts"]
    assert [a["email"] for a in dropbox] == [SANDBOX_EMAIL]

    # the consent page, as a person goes through it
    params = {
        "client_id": GDRIVE_CLIENT_ID,
        "redirect_uri": REDIRECT,
        "response_type": "code",
        "scope": DRIVE_SCOPE,
        "access_type": "offline",
        "prompt": "consent",
        "state": "s-1",
    }
    page = await http.get(f"{google}/o/oauth2/v2/auth", params=params)
    assert page.status_code == 200 and f'action="{google}/o/oauth2/v2/auth"' in page.text
    decision = await http.post(
        f"{google}/o/oauth2/v2/auth",
        data={**params, "permission_id": accounts[0]["permission_id"], "decision": "allow"},
    )
    assert decision.status_code == 302
    back = parse_qs(urlsplit(decision.headers["location"]).query)
    assert back["state"] == ["s-1"] and back["scope"] == [DRIVE_SCOPE]
    tokens = (
        await http.post(
            f"{google}/token",
            data={
                "grant_type": "authorization_code",
                "code": back["code"][0],
                "redirect_uri": REDIRECT,
                "client_id": GDRIVE_CLIENT_ID,
                "client_secret": sandbox_app_secret(settings),
            },
        )
    ).json()
    assert tokens["refresh_token"]
    about = await http.get(
        f"{google}/drive/v3/about",
        params={"fields": "user(emailAddress)"},
        headers={"Authorization": f"Bearer {tokens['access_token']}"},
    )
    assert about.json() == {"user": {"emailAddress": SANDBOX_EMAIL}}

    big = b'{"email": "a@b.io", "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
    refused = await http.post(
        f"{google}/_sandbox/accounts", content=big, headers={"Content-Type": "application/json"}
    )
    assert refused.status_code == 413
    form = await http.post(
        f"{google}/_sandbox/accounts",
        content=b'{"email": "x@y.io"}',
        headers={"Content-Type": "text/plain"},
    )
    assert form.status_code == 415  # a page elsewhere cannot post to the control API


# ------------------------------------------------------------- the push sender


def notify_receiver() -> Starlette:
    async def notify(request: Request) -> Response:
        return Response(status_code=200)

    return Starlette(routes=[Route("/notify", notify, methods=["POST"])])


async def first_push(tmp_path: Path, public: bool, address: str) -> dict[str, Any]:
    settings = Settings(data_dir=tmp_path)
    exposed = exposure(
        "0.0.0.0" if public else "127.0.0.1", public=public, settings=settings, flag=""
    )
    gdrive_app = create_gdrive(push_delay=0)
    both(create_dropbox(access=exposed.access), gdrive_app, exposed)
    sandbox = gdrive_app.state.sandbox
    app = sandbox.register_app()
    account = sandbox.create_account("push@example.com")
    code = sandbox.authorize(
        app.client_id, account.permission_id, REDIRECT, [DRIVE_SCOPE], offline=False
    )
    access, _ = sandbox.tokens.exchange_code(app.client_id, code, REDIRECT)
    sandbox.watch(access, WatchRequest("c1", address, "t", None), "http://x/changes")
    try:
        entry = await eventually(lambda: _first(sandbox.push.log))
        return dict(entry)
    finally:
        await sandbox.aclose()


async def _first(log: Any) -> Any:
    return next(iter(log), None)


async def test_pushes_go_through_the_callbacks_guard(tmp_path: Path) -> None:
    async with serving(notify_receiver()) as url:
        sent = await first_push(tmp_path, public=False, address=f"{url}/notify")
        assert sent["status"] == 200 and sent["error"] is None
        blocked = await first_push(tmp_path, public=True, address=f"{url}/notify")
        assert blocked["status"] is None and blocked["error"].startswith("BlockedAddress")
        private = await first_push(tmp_path, public=False, address="http://10.0.0.7/notify")
        assert private["error"].startswith("BlockedAddress")
