"""relaybox as real child processes, for tests that kill, restart or multiply it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet

from relaybox.sandbox.app import create_app as create_sandbox
from tests.support.servers import CallbackReceiver, free_port, serving
from tests.support.stack import APP_KEY, APP_SECRET, AUTH, ORG_SECRET, USER_SECRET, Stack


class Relaybox:
    """`relaybox serve` as a child process that can be killed and started again."""

    def __init__(
        self, env: dict[str, str], port: int, log: Path, args: tuple[str, ...] = ()
    ) -> None:
        self.env, self.port, self.log, self.args = env, port, log, args
        self.process: subprocess.Popen[bytes] | None = None
        self.kills = 0

    async def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "relaybox", "serve", "--port", str(self.port), *self.args],
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                try:
                    if (await http.get(f"http://127.0.0.1:{self.port}/readyz")).status_code == 200:
                        return
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.05)
        raise AssertionError("relaybox did not start:\n" + self.log.read_text()[-3000:])

    async def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.kills += 1

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=30)


async def run_command(env: dict[str, str], *args: str, timeout: float = 60) -> tuple[int, str, str]:
    """`python -m relaybox ARGS` to its end (killed past `timeout`): exit code, stdout, stderr."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relaybox",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        out, err = await asyncio.wait_for(process.communicate(), timeout)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    return process.returncode or 0, out.decode(), err.decode()


def relaybox_env(tmp_path: Path, database_url: str, port: int) -> dict[str, str]:
    """The environment of a relaybox child process on `port`: quick leases, polls and
    retries, a fresh secret key, the test organization."""
    return {
        **os.environ,
        "RELAYBOX_DATABASE_URL": database_url,
        "RELAYBOX_DATA_DIR": str(tmp_path / "data"),
        "RELAYBOX_SECRET_KEY": Fernet.generate_key().decode(),
        "RELAYBOX_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "RELAYBOX_BOOTSTRAP_USER_SECRET": USER_SECRET,
        "RELAYBOX_BOOTSTRAP_ORG_SECRET": ORG_SECRET,
        "RELAYBOX_ALLOW_PRIVATE_CALLBACKS": "true",
        "RELAYBOX_RETRY_SCHEDULE": "0.3,0.5,1,1,1,1,1,1,1",
        "RELAYBOX_LEASE_SECONDS": "2",
        "RELAYBOX_WORKER_POLL_SECONDS": "0.2",
    }


async def start_relaybox(
    tmp_path: Path,
    database_url: str,
    port: int,
    sandbox_url: str,
    sandbox_app: Any,
    receiver: CallbackReceiver,
    receiver_url: str,
    http: httpx.AsyncClient,
    serve_args: tuple[str, ...] = (),
) -> tuple[Relaybox, Stack]:
    """relaybox as a child process against the in-test sandbox, with its Dropbox app set up."""
    env = {
        **relaybox_env(tmp_path, database_url, port),
        **{f"RELAYBOX_DROPBOX_{h}_URL": sandbox_url for h in ("API", "CONTENT", "NOTIFY", "WWW")},
    }
    server = Relaybox(env, port, tmp_path / "relaybox.log", serve_args)
    stack = Stack(
        f"http://127.0.0.1:{port}",
        sandbox_url,
        receiver,
        f"{receiver_url}/events",
        http,
        None,
        sandbox_app,
    )  # type: ignore[arg-type]
    await server.start()
    await stack.control(
        "POST",
        "/apps",
        json={
            "app_key": APP_KEY,
            "app_secret": APP_SECRET,
            "webhook_uri": f"http://127.0.0.1:{port}/elements/api-v2/events/dropbox",
        },
    )
    return server, stack


@contextlib.asynccontextmanager
async def relaybox_process(
    tmp_path: Path,
    database_url: str,
    receiver: CallbackReceiver,
    *,
    webhook_delay: float = 0.05,
    serve_args: tuple[str, ...] = (),
) -> AsyncIterator[tuple[Relaybox, Stack]]:
    """The in-test sandbox and callback receiver, and relaybox as a child process."""
    sandbox_app = create_sandbox(webhook_delay=webhook_delay)
    async with (
        serving(sandbox_app) as sandbox_url,
        serving(receiver.app()) as receiver_url,
        httpx.AsyncClient(timeout=30) as http,
    ):
        server, stack = await start_relaybox(
            tmp_path,
            database_url,
            free_port(),
            sandbox_url,
            sandbox_app,
            receiver,
            receiver_url,
            http,
            serve_args,
        )
        try:
            yield server, stack
        finally:
            server.stop()


# --- SIGKILL chaos (tests/integration/test_crash.py, test_gdrive_crash.py) ---------------


async def chaos(
    server: Relaybox, receiver: CallbackReceiver, stop: asyncio.Event, rng: random.Random
) -> None:
    """Kill at random moments, at least twice; every other kill waits for a delivery in flight."""
    kills = 0
    while not stop.is_set() or kills < 2:
        kills += 1
        await asyncio.sleep(rng.uniform(0.4, 1.2))
        if server.kills % 2:
            for _ in range(40):
                if receiver.in_flight:
                    break
                await asyncio.sleep(0.025)
        await server.kill()
        await asyncio.sleep(rng.uniform(0.05, 0.4))
        await server.start()


async def run_phase(
    stack: Stack | Any,
    server: Relaybox,
    rng: random.Random,
    expected: set[tuple[str, str, str | None]],
    steps: list[Any],
) -> None:
    stop = asyncio.Event()
    killer = asyncio.create_task(chaos(server, stack.receiver, stop, rng))
    try:
        for step in steps:
            await step()
            await asyncio.sleep(rng.uniform(0, 0.02))
    finally:
        stop.set()
        await killer

    def complete(receiver: CallbackReceiver) -> bool:
        got = {(e["eventType"], e["path"], e.get("newPath")) for e in receiver.events()}
        return expected <= got

    await stack.receiver.wait_for(complete, timeout=90)


async def all_delivered(stack: Stack | Any, instance_id: int) -> bool:
    """Whether the instance has deliveries and every one of them is delivered."""
    listed = (
        await stack.http.get(
            f"{stack.api}/instances/{instance_id}/deliveries",
            params={"pageSize": 500},
            headers=AUTH,
        )
    ).json()
    return bool(listed) and all(d["status"] == "delivered" for d in listed)
