"""SIGTERM stops `relaybox sandbox` and `relaybox serve` within 10 s while clients hold
connections open: 2,000 longpolls (each would otherwise wait 120 s), idle keep-alive
connections, a client stalled half-way through its request (relaybox/server.py)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import secrets
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaybox.demo import Demo
from relaybox.web.session import COOKIE
from tests.support.console import session_cookie
from tests.support.servers import free_port

STOP_WITHIN = 10.0
LONGPOLLS = 2_000
REDIRECT = "http://127.0.0.1/done"


@pytest.fixture
def descriptors() -> Any:
    """Room for 2,000 connections at each end (the children inherit the limit)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = 3 * LONGPOLLS + 1_000
    if hard != resource.RLIM_INFINITY and hard < wanted:
        pytest.skip(f"the file-descriptor limit ({hard}) is below {wanted}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, wanted), hard))
    yield
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def start(
    args: list[str], tmp_path: Path, log: Path, extra: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RELAYBOX_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    for name in ("RELAYBOX_DATABASE_URL", "RELAYBOX_PUBLIC_URL", "RELAYBOX_SANDBOX_TOKEN"):
        env.pop(name, None)
    env.update(extra or {})
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "relaybox", *args],
            env=env,
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def until(check: Any, what: str, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if await check():
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} within {timeout} s:\n{log.read_text()[-3000:]}")
        await asyncio.sleep(0.1)


def answering(url: str) -> Any:
    async def check() -> bool:
        async with httpx.AsyncClient() as http:
            return (await http.get(url)).status_code == 200

    return check


def open_sockets(pid: int) -> int:
    fds = Path(f"/proc/{pid}/fd")
    count = 0
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):  # closed meanwhile
            count += os.readlink(fd).startswith("socket:")
    return count


async def cursor_of(http: httpx.AsyncClient, sandbox: str) -> str:
    """A fresh account's list_folder cursor, through the control API and OAuth."""
    key, secret = "shutdown-app", "shutdown-secret"
    (await http.post(f"{sandbox}/_sandbox/apps", json={"app_key": key, "app_secret": secret}))
    account = (
        await http.post(f"{sandbox}/_sandbox/accounts", json={"email": "stop@example.com"})
    ).json()["account_id"]
    grant = {"app_key": key, "account_id": account, "redirect_uri": REDIRECT}
    code = (await http.post(f"{sandbox}/_sandbox/authorize", json=grant)).json()["code"]
    tokens = await http.post(
        f"{sandbox}/oauth2/token",
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": REDIRECT,
            "client_id": key,
            "client_secret": secret,
        },
    )
    bearer = {"Authorization": f"Bearer {tokens.json()['access_token']}"}
    latest = await http.post(
        f"{sandbox}/2/files/list_folder/get_latest_cursor", json={"path": ""}, headers=bearer
    )
    return str(latest.json()["cursor"])


async def longpoll(http: httpx.AsyncClient, sandbox: str, cursor: str) -> Any:
    """The longpoll's answer, or the error that ended it (a closed connection)."""
    try:
        answer = await http.post(
            f"{sandbox}/2/files/list_folder/longpoll", json={"cursor": cursor, "timeout": 120}
        )
        return answer.json()
    except httpx.TransportError as error:
        return error


async def stops_in_time(process: subprocess.Popen[bytes], log: Path) -> float:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    while process.poll() is None:
        if time.monotonic() - started > 30:
            process.kill()
            raise AssertionError("still running 30 s after SIGTERM:\n" + log.read_text()[-3000:])
        await asyncio.sleep(0.05)
    took = time.monotonic() - started
    assert took < STOP_WITHIN, f"took {took:.1f} s to stop:\n{log.read_text()[-3000:]}"
    # uvicorn ends a graceful shutdown by raising the signal it caught again.
    assert process.returncode in (0, -signal.SIGTERM), log.read_text()[-3000:]
    return took


async def settle(tasks: list[asyncio.Task[Any]]) -> list[Any]:
    """The held requests' outcomes; none may still be waiting once the server is gone."""
    done, pending = await asyncio.wait(tasks, timeout=5)
    assert not pending, f"{len(pending)} requests still waiting after the server stopped"
    return [task.result() for task in done]


async def test_sandbox_stops_within_10_s_holding_2000_longpolls(
    tmp_path: Path, descriptors: Any
) -> None:
    port, log = free_port(), tmp_path / "sandbox.log"
    process = start(["sandbox", "--port", str(port)], tmp_path, log)
    sandbox = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    try:
        async with httpx.AsyncClient(timeout=180, limits=limits) as http:
            await until(answering(f"{sandbox}/_sandbox/apps"), "sandbox up", 30, log)
            cursor = await cursor_of(http, sandbox)
            tasks = [asyncio.create_task(longpoll(http, sandbox, cursor)) for _ in range(LONGPOLLS)]

            async def all_held() -> bool:
                return open_sockets(process.pid) >= LONGPOLLS

            await until(all_held, f"{LONGPOLLS} longpolls held", 90, log)
            assert not any(task.done() for task in tasks)
            await stops_in_time(process, log)
            outcomes = await settle(tasks)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    # Every wait was answered as the shutdown began, none cut off.
    unanswered = [o for o in outcomes if o != {"changes": False}]
    assert unanswered == [], unanswered[:3]


async def test_serve_stops_within_10_s_holding_live_connections(tmp_path: Path) -> None:
    port, log = free_port(), tmp_path / "serve.log"
    process = start(["serve", "--sandbox", "--port", str(port)], tmp_path, log)
    base = f"http://127.0.0.1:{port}"
    limits = httpx.Limits(max_connections=None, max_keepalive_connections=None)
    stalled: list[asyncio.StreamWriter] = []
    try:
        await until(answering(f"{base}/readyz"), "ready", 60, log)
        # Consoles: keep-alive connections left open after their pages (one client each).
        consoles = [httpx.AsyncClient(limits=limits, timeout=30) for _ in range(20)]
        for console in consoles:
            assert (await console.get(f"{base}/ui/signin")).status_code == 200
            assert (await console.get(f"{base}/healthz")).status_code == 200
        # Requests held open by the server: longpolls to the mounted sandbox.
        http = httpx.AsyncClient(limits=limits, timeout=180)
        cursor = await cursor_of(http, f"{base}/sandbox")
        held = [asyncio.create_task(longpoll(http, f"{base}/sandbox", cursor)) for _ in range(50)]
        # Clients stalled half-way through sending their request.
        for _ in range(5):
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            await writer.drain()
            stalled.append(writer)

        async def all_open() -> bool:
            return open_sockets(process.pid) >= 20 + 50 + 5

        await until(all_open, "connections open", 30, log)
        await asyncio.sleep(0.5)
        assert not any(task.done() for task in held)
        await stops_in_time(process, log)
        outcomes = await settle(held)
        assert outcomes == [{"changes": False}] * len(held), outcomes[:3]
        for console in consoles:
            await console.aclose()
        await http.aclose()
    finally:
        for writer in stalled:
            writer.close()
        if process.poll() is None:
            process.kill()
            process.wait()


async def test_serve_stops_at_once_holding_live_console_pages(tmp_path: Path) -> None:
    """Consoles with live pages open (Server-Sent Events streams held by the server) do
    not hold `relaybox serve` after SIGTERM: the streams end as the shutdown begins,
    without waiting for uvicorn's grace period to cancel them."""
    port, log = free_port(), tmp_path / "serve.log"
    user, org = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    env_extra = {"RELAYBOX_BOOTSTRAP_USER_SECRET": user, "RELAYBOX_BOOTSTRAP_ORG_SECRET": org}
    process = start(["serve", "--sandbox", "--port", str(port)], tmp_path, log, env_extra)
    base = f"http://127.0.0.1:{port}"
    credential = f"User {user}, Organization {org}"
    streams: list[Any] = []
    try:
        await until(answering(f"{base}/readyz"), "ready", 60, log)
        async with httpx.AsyncClient(timeout=30, follow_redirects=False) as http:
            demo = Demo(http, base, credential, None)
            app_key, app_secret = await demo.register_app()
            account = await demo.control("POST", "/accounts", json={"email": "l@example.com"})
            instance = await demo.connect(
                app_key, app_secret, account["account_id"], "http://127.0.0.1:9/x", "k" * 16
            )
            cookie = await session_cookie(http, base, credential)
        limits = httpx.Limits(max_connections=None)
        client = httpx.AsyncClient(limits=limits, timeout=30)
        async with contextlib.AsyncExitStack() as held:
            for _ in range(5):
                stream = await held.enter_async_context(
                    client.stream(
                        "GET",
                        f"{base}/ui/instances/{instance['id']}/live",
                        headers={"Cookie": f"{COOKIE}={cookie}"},
                    )
                )
                assert stream.status_code == 200, await stream.aread()
                assert stream.headers["content-type"].startswith("text/event-stream")
                chunks = stream.aiter_raw()
                assert (await anext(chunks)).startswith(b": live")
                streams.append(chunks)
            await stops_in_time(process, log)

            async def to_end(chunks: Any) -> None:
                with contextlib.suppress(httpx.HTTPError):
                    async for _ in chunks:
                        pass

            await asyncio.wait_for(asyncio.gather(*(to_end(c) for c in streams)), 5)
        await client.aclose()
        # Ended by relaybox, not cancelled by uvicorn after its grace period.
        assert "graceful shutdown exceeded" not in log.read_text(), log.read_text()[-2000:]
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
