"""The sandbox stays a development tool: loopback only unless deliberately public (then with
a token), its webhooks through the SSRF guard, explicit settings over `--sandbox` defaults,
bounded request bodies (issue 10, finding 1)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route

from relaybox.cli import _with_sandbox
from relaybox.config import Settings
from relaybox.sandbox.app import create_app as create_sandbox
from relaybox.sandbox_serving import Exposure, exposure, secure
from tests.support.dns import fake_dns
from tests.support.servers import eventually, free_port, serving


def relaybox(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "relaybox", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
    )


def refused(process: subprocess.Popen[str]) -> str:
    """The process's error output, once it has exited with status 2 (not served at all)."""
    try:
        _, err = process.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.communicate()
        raise AssertionError("it served instead of refusing") from None
    assert process.returncode == 2, err
    return err


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3"])
def test_serve_sandbox_beyond_loopback_is_refused(tmp_path: Path, host: str) -> None:
    env = {"RELAYBOX_DATA_DIR": str(tmp_path)}
    err = refused(relaybox("serve", "--sandbox", "--host", host, "--port", "1", env=env))
    assert "reachable beyond this machine" in err and "--sandbox-public" in err
    assert not (tmp_path / "relaybox.db").exists()  # refused before anything started


def test_serve_sandbox_behind_a_public_url_is_refused(tmp_path: Path) -> None:
    """On loopback behind a proxy, the sandbox would be public through the proxy."""
    env = {"RELAYBOX_DATA_DIR": str(tmp_path), "RELAYBOX_PUBLIC_URL": "https://relay.example.com"}
    err = refused(relaybox("serve", "--sandbox", "--port", "1", env=env))
    assert "relay.example.com" in err and "--sandbox-public" in err


def test_standalone_sandbox_beyond_loopback_is_refused() -> None:
    err = refused(relaybox("sandbox", "--host", "0.0.0.0", "--port", "1"))
    assert "reachable beyond this machine" in err and "--public" in err
    err = refused(relaybox("sandbox", "--allowed-host", "sandbox.example.com", "--port", "1"))
    assert "sandbox.example.com" in err


@pytest.fixture
def public_sandbox() -> Iterator[tuple[str, str]]:
    """`relaybox sandbox --public` (on a loopback port): its base URL and printed token."""
    port = free_port()
    process = relaybox("sandbox", "--public", "--allowed-host", "sandbox.test", "--port", str(port))
    try:
        assert process.stdout is not None
        token = ""
        for line in process.stdout:
            found = re.search(r"control API token \(generated\): (\S+)", line)
            if found:
                token = found.group(1)
                break
        assert token, "no token printed"
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:  # the token is printed before uvicorn listens
            assert process.poll() is None, process.stderr.read() if process.stderr else ""
            try:
                httpx.get(f"{base}/_sandbox/accounts", timeout=5)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the sandbox did not start"
                time.sleep(0.05)
        yield base, token
    finally:
        process.terminate()
        process.communicate(timeout=30)


def test_a_public_sandbox_needs_its_token(public_sandbox: tuple[str, str]) -> None:
    base, token = public_sandbox
    app = {"app_key": "k", "app_secret": "s", "webhook_uri": "http://169.254.169.254/latest"}
    with httpx.Client(base_url=base, timeout=10) as http:
        assert http.post("/_sandbox/apps", json=app).status_code == 401
        assert http.get("/_sandbox/webhooks/log").status_code == 401
        wrong = {"Authorization": "Bearer " + token[:-1]}
        assert http.post("/_sandbox/apps", json=app, headers=wrong).status_code == 401
        bearer = {"Authorization": f"Bearer {token}"}
        assert http.get("/_sandbox/apps", headers=bearer).json() == {"apps": []}
        named = {**bearer, "Host": "sandbox.test"}  # the name given with --allowed-host
        assert http.get("/_sandbox/apps", headers=named).status_code == 200
        other = {**bearer, "Host": "rebound.example"}
        assert http.get("/_sandbox/apps", headers=other).status_code == 403


def test_a_sandbox_token_from_the_environment_is_required_on_loopback_too(
    tmp_path: Path,
) -> None:
    settings = Settings(data_dir=tmp_path, sandbox_token="from-the-environment-1234")
    exposed = exposure("127.0.0.1", public=False, settings=settings, flag="--public")
    assert exposed.access.token == "from-the-environment-1234" and not exposed.token_generated
    public = exposure("127.0.0.1", public=True, settings=Settings(data_dir=tmp_path), flag="")
    assert public.token_generated and len(public.access.token or "") >= 32


# ------------------------------------------------------------- explicit settings win


def served_settings(tmp_path: Path, host: str = "127.0.0.1", public: bool = False) -> Settings:
    settings = _with_sandbox(Settings(data_dir=tmp_path), host, public)[0]
    return settings


def test_sandbox_allows_private_callbacks_on_loopback_by_default(tmp_path: Path) -> None:
    assert served_settings(tmp_path).allow_private_callbacks is True  # `make run`'s demo


def test_an_explicit_allow_private_callbacks_false_wins_over_sandbox(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYBOX_ALLOW_PRIVATE_CALLBACKS", "false")
    assert served_settings(tmp_path).allow_private_callbacks is False


def test_a_public_sandbox_keeps_the_callback_guard(tmp_path: Path) -> None:
    assert served_settings(tmp_path, "0.0.0.0", public=True).allow_private_callbacks is False


# ------------------------------------------------------------- the webhook sender


def challenge_answerer() -> Starlette:
    async def hook(request: Request) -> PlainTextResponse:
        return PlainTextResponse(request.query_params.get("challenge", ""))

    return Starlette(routes=[Route("/hook", hook, methods=["GET", "POST"])])


async def first_challenge(exposed: Exposure, uri: str) -> dict[str, Any]:
    sandbox_app = create_sandbox(access=exposed.access)
    secure(sandbox_app, exposed)
    sandbox = sandbox_app.state.sandbox
    sandbox.webhooks.retry_base = 0.01
    sandbox.register_app("k", "s", uri)
    try:
        entry = await eventually(lambda: _first(sandbox.webhooks.log))
        return dict(entry)
    finally:
        await sandbox.aclose()


async def _first(log: Any) -> Any:
    return next(iter(log), None)


@pytest.fixture
async def receiver() -> AsyncIterator[str]:
    async with serving(challenge_answerer()) as url:
        yield url


@pytest.fixture
def names(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_dns(monkeypatch, {"metadata.test": ["169.254.169.254"], "intranet.test": ["10.0.0.7"]})


def loopback(tmp_path: Path) -> Exposure:
    return exposure("127.0.0.1", public=False, settings=Settings(data_dir=tmp_path), flag="")


def public(tmp_path: Path, **settings: Any) -> Exposure:
    return exposure(
        "0.0.0.0", public=True, settings=Settings(data_dir=tmp_path, **settings), flag=""
    )


async def test_a_public_sandbox_will_not_send_webhooks_to_loopback(
    tmp_path: Path, receiver: str
) -> None:
    entry = await first_challenge(public(tmp_path), f"{receiver}/hook")
    assert entry["verified"] is False and entry["status"] is None
    assert entry["error"].startswith("BlockedAddress") and "loopback" in entry["error"]
    assert entry["response"] == ""


@pytest.mark.usefixtures("names")
@pytest.mark.parametrize("uri", ["http://metadata.test/latest", "http://intranet.test:8080/x"])
async def test_a_public_sandbox_will_not_send_webhooks_to_private_addresses(
    tmp_path: Path, uri: str
) -> None:
    entry = await first_challenge(public(tmp_path), uri)
    assert entry["error"].startswith("BlockedAddress") and entry["status"] is None


@pytest.mark.usefixtures("names")
async def test_a_loopback_sandbox_sends_to_loopback_and_nowhere_private(
    tmp_path: Path, receiver: str
) -> None:
    verified = await first_challenge(loopback(tmp_path), f"{receiver}/hook")
    assert verified["verified"] is True and verified["status"] == 200
    for uri in ("http://metadata.test/latest", "http://10.0.0.7/", "http://[::ffff:10.0.0.7]/"):
        entry = await first_challenge(loopback(tmp_path), uri)
        assert entry["error"].startswith("BlockedAddress"), entry


async def test_an_explicit_allow_private_callbacks_true_reaches_the_sandbox_sender(
    tmp_path: Path, receiver: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RELAYBOX_ALLOW_PRIVATE_CALLBACKS", "true")
    entry = await first_challenge(public(tmp_path), f"{receiver}/hook")
    assert entry["verified"] is True


# ------------------------------------------------------------- body limits


async def test_bodies_are_bounded_under_sandbox(tmp_path: Path) -> None:
    exposed = loopback(tmp_path)
    sandbox_app = create_sandbox(access=exposed.access)
    parent = Starlette(routes=[Mount("/sandbox", secure(sandbox_app, exposed))])
    transport = httpx.ASGITransport(app=parent)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8000") as http:
        big_json = b'{"email": "a@b.io", "pad": "' + b"x" * (2 * 1024 * 1024) + b'"}'
        headers = {"Content-Type": "application/json"}
        answer = await http.post("/sandbox/_sandbox/accounts", content=big_json, headers=headers)
        assert answer.status_code == 413 and sandbox_app.state.sandbox.accounts == {}
        account = (await http.post("/sandbox/_sandbox/accounts", json={"email": "a@b.io"})).json()
        files = f"/sandbox/_sandbox/accounts/{account['account_id']}/files"
        two_mib = b"y" * (2 * 1024 * 1024)
        put = await http.put(files, params={"path": "/big.bin"}, content=two_mib)
        assert put.status_code == 200 and put.json()["size"] == len(two_mib)

        async def claimed() -> AsyncIterator[bytes]:
            yield b"z"

        huge = {
            "Content-Length": str(152 * 1024 * 1024),
            "Content-Type": "application/octet-stream",
        }
        upload = await http.post("/sandbox/2/files/upload", content=claimed(), headers=huge)
        assert upload.status_code == 413
