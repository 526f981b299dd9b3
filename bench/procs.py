"""Child processes for the benchmarks: start, wait until ready, stop, and read their CPU and RSS.

Every child runs in its own process group and is remembered in ``CHILDREN``; ``stop_all``
(registered with ``atexit`` and called on SIGTERM) kills what is still running, so a failed
or interrupted benchmark leaves no process behind. CPU and memory come from ``/proc``.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import IO

import httpx

TICKS = os.sysconf("SC_CLK_TCK")
PYTHON = sys.executable
RELAYBOX = str(Path(sys.executable).with_name("relaybox"))
CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Child:
    """One child process, its output kept in a temporary file for error messages."""

    def __init__(self, name: str, args: Sequence[str], env: dict[str, str] | None = None) -> None:
        if Stopping.now:
            raise RuntimeError(f"not starting {name}: stopping")
        self.name, self.args = name, list(args)
        self.log: IO[bytes] = tempfile.TemporaryFile()  # noqa: SIM115 (closed in stop())
        self.process = subprocess.Popen(
            self.args,
            env=env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: stop() reaches its children too
        )
        CHILDREN[self.process.pid] = self.process

    @property
    def pid(self) -> int:
        return self.process.pid

    def output(self, tail: int = 3000) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-tail:]

    async def ready(self, url: str, timeout: float = 60.0) -> None:
        """Wait until GET `url` answers below 500 (or fail with the child's output)."""
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=5) as http:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    break
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(url)).status_code < 500:
                        return
                await asyncio.sleep(0.05)
        raise RuntimeError(f"{self.name} did not become ready at {url}:\n{self.output()}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the process group, SIGKILL after `timeout` seconds."""
        process = self.process
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
        with contextlib.suppress(ProcessLookupError):  # anything it left in its group
            os.killpg(process.pid, signal.SIGKILL)
        CHILDREN.pop(process.pid, None)
        self.log.close()


@contextlib.asynccontextmanager
async def child(
    name: str,
    args: Sequence[str],
    ready: str,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
) -> AsyncIterator[Child]:
    """A child process, ready (GET `ready` below 500) inside the block, stopped after it."""
    proc = Child(name, args, env)
    try:
        await proc.ready(ready, timeout)
        yield proc
    finally:
        await asyncio.to_thread(proc.stop)


def stop_all() -> None:
    for pid, process in list(CHILDREN.items()):
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            with contextlib.suppress(subprocess.TimeoutExpired):
                process.wait(timeout=5)
        CHILDREN.pop(pid, None)


class Stopping:
    """Set by SIGTERM or SIGINT. Python 3.11's ``asyncio.wait_for`` can swallow a
    cancellation that races with its inner task finishing, so a benchmark must not rely on
    cancellation alone to stop: its loops check this flag, and no child starts once set."""

    now = False


def _on_signal(signum: int, frame: object) -> None:
    Stopping.now = True
    stop_all()
    if signum == signal.SIGINT:
        raise KeyboardInterrupt
    raise SystemExit(128 + signum)


atexit.register(stop_all)
with contextlib.suppress(ValueError):  # not in the main thread: atexit still covers normal exits
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)  # asyncio.run then leaves SIGINT to us


# ----------------------------------------------------------------------------- /proc


def _stat(pid: int) -> list[str] | None:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    return text.rsplit(")", 1)[1].split()  # fields from the state on (field 3 of proc(5))


def _children_map() -> dict[int, list[int]]:
    out: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            fields = _stat(int(entry.name))
            if fields is not None:
                out.setdefault(int(fields[1]), []).append(int(entry.name))
    return out


def descendants(pid: int) -> list[int]:
    tree, out, todo = _children_map(), [], [pid]
    while todo:
        for kid in tree.get(todo.pop(), []):
            out.append(kid)
            todo.append(kid)
    return out


def cpu_seconds(pid: int, children: bool = True) -> float:
    """User+system CPU seconds of `pid`; with `children`, plus its live descendants' and
    the children it has already waited for (cutime+cstime)."""
    fields = _stat(pid)
    if fields is None:
        return 0.0
    ticks = int(fields[11]) + int(fields[12])
    if children:
        ticks += int(fields[13]) + int(fields[14])
        for kid in descendants(pid):
            kid_fields = _stat(kid)
            if kid_fields is not None:
                ticks += int(kid_fields[11]) + int(kid_fields[12])
    return ticks / TICKS


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


# Postgres server processes that serve every database (their work is on our behalf too).
PG_SHARED = ("checkpointer", "background writer", "walwriter", "autovacuum launcher")


class PostgresCPU:
    """CPU of the PostgreSQL server on behalf of one database.

    Counts the backends whose process title names `database` (``postgres: user db host ...``,
    autovacuum workers included) and the shared writer processes (checkpointer, background
    writer, walwriter), not the backends of other databases: other tests may use the same
    server meanwhile. Backends come and go, so a sampler task reads them every 0.25 s and
    keeps each one's last value; a backend that lived less than that between two samples
    is missed (relaybox keeps a connection pool, so its backends live through a run).
    """

    def __init__(self, database: str) -> None:
        self.database = database
        self.first: dict[int, float] = {}
        self.last: dict[int, float] = {}
        self._task: asyncio.Task[None] | None = None

    def _ours(self, pid: int) -> bool:
        try:
            title = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            return False
        if not title.startswith("postgres:"):
            return False
        return f" {self.database} " in f"{title} " or any(name in title for name in PG_SHARED)

    def sample(self) -> None:
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if pid not in self.last and not self._ours(pid):
                continue
            fields = _stat(pid)
            if fields is None:
                continue
            value = (int(fields[11]) + int(fields[12])) / TICKS
            self.last[pid] = value
            # a backend first seen after start() began inside the window: count it all
            self.first.setdefault(pid, value if self._task is None else 0.0)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(0.25)
            self.sample()

    def start(self) -> None:
        self.first, self.last = {}, {}
        self.sample()
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> float:
        """Seconds of CPU since start()."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self.sample()
        self._task = None
        return sum(self.last[pid] - self.first.get(pid, 0.0) for pid in self.last)


class CPUWindow:
    """CPU seconds used by a set of processes between start() and stop()."""

    def __init__(self, pids: dict[str, int], postgres: str | None = None) -> None:
        self.pids = pids
        self.postgres = PostgresCPU(postgres) if postgres else None
        self.before: dict[str, float] = {}

    def _read(self) -> dict[str, float]:
        out = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        out["driver"] = own_cpu_seconds()
        return out

    def start(self) -> None:
        self.before = self._read()
        if self.postgres is not None:
            self.postgres.start()

    async def stop(self) -> dict[str, float]:
        after = self._read()
        out = {name: after[name] - self.before[name] for name in after}
        if self.postgres is not None:
            out["postgres"] = await self.postgres.stop()
        return out


# ----------------------------------------------------------------------------- machine


def machine_info() -> dict[str, str]:
    info = {
        "nproc": str(os.cpu_count()),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu"] = line.split(":", 1)[1].strip()
                break
    with contextlib.suppress(OSError):
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                info["memory"] = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
                break
    with contextlib.suppress(OSError):
        info["loadavg (1/5/15 min)"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        info["git commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "relaybox", "pyproject.toml"],
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout
        if dirty.strip():
            info["git commit"] += " (with uncommitted changes to relaybox/)"
    return info
