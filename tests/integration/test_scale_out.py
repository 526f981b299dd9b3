"""The scale-out form: `relaybox serve --no-workers` plus two `relaybox worker` processes on one
database. Every change is delivered exactly once, and losing a worker loses nothing."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path

from tests.support.processes import relaybox_process
from tests.support.servers import CallbackReceiver


def worker(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "relaybox", "worker"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_two_worker_processes_deliver_every_change_once(
    tmp_path: Path, database_url: str
) -> None:
    receiver = CallbackReceiver(delay=0.02)
    async with relaybox_process(tmp_path, database_url, receiver, serve_args=("--no-workers",)) as (
        server,
        stack,
    ):
        workers = [worker(server.env, tmp_path / f"worker{n}.log") for n in (1, 2)]
        try:
            account = await stack.new_account("scale@example.com")
            for folder in ("/one", "/two"):
                await stack.folder(account, folder)
            await stack.connect(account)
            gate = asyncio.Semaphore(8)

            async def upload(path: str) -> None:
                async with gate:
                    await stack.upload(account, path, path.encode())

            first = [f"/one/f{n:02}.txt" for n in range(40)]
            await asyncio.gather(*(upload(p) for p in first))
            await receiver.wait_for(lambda r: len(r.events()) >= len(first), timeout=60)

            workers[0].send_signal(signal.SIGKILL)  # one worker dies; the other carries on
            workers[0].wait()
            second = [f"/two/f{n:02}.txt" for n in range(20)]
            await asyncio.gather(*(upload(p) for p in second))
            await receiver.wait_for(
                lambda r: len(r.events()) >= len(first) + len(second), timeout=60
            )
            await asyncio.sleep(1.0)
            counts = Counter(e["path"] for e in receiver.events())
            assert set(counts) == set(first) | set(second)
            assert set(counts.values()) == {1}, "delivered exactly once"
            assert {e["eventType"] for e in receiver.events()} == {"CREATED"}
            assert workers[1].poll() is None, "the surviving worker is still running"
        finally:
            for process in workers:
                if process.poll() is None:
                    process.terminate()
                    process.wait(timeout=30)
