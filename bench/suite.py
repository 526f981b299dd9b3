"""The issue-9 benchmark suite: relaybox against baselines, every part in its own process.

    make bench                                   # everything, full sizes (about 20 minutes)
    .venv/bin/python -m bench.suite --quick      # a small smoke run of everything
    .venv/bin/python -m bench.suite --only throughput,latency --databases sqlite
    .venv/bin/python -m bench.suite --only throughput --profile

Each run starts, on loopback ports, a fresh Dropbox sandbox (``relaybox sandbox``), a
callback receiver (``bench/receiver.py``) and the relay under test: ``relaybox serve`` on a
fresh SQLite or PostgreSQL database, or the baseline (``bench/handwritten_relay.py``, or
``bench/bare.py`` for ingest). This process is the load driver. Scenarios:

throughput  N uploads through the sandbox (spread over 20 accounts, bounded concurrency);
            the sandbox sends its coalesced webhooks; events/s until the receiver holds all
            N events, and events per CPU-second of the relay (relaybox: the process and its
            children, plus on PostgreSQL the server's processes for this database).
latency     uploads at a fixed rate over 20 instances: p50/p99 of (arrival at the receiver
            - upload answered), and the spread of the instances' medians.
fanout      N accounts with one change each, then ONE signed webhook naming all of them
            (sent by the driver; the sandbox's own webhooks are off): time until all N
            events arrived. relaybox's instances are seeded into the database.
ingest      wrk POSTing a signed webhook (one account) to relaybox's receiver, against the
            same on a bare Starlette endpoint; then inbox rows against wrk's 2xx count.
memory      RSS of relaybox holding N seeded instances after a few passes over all of them,
            against the handwritten relay holding the same accounts.

Every figure is printed with its ratio to the baseline of the same run; a table follows at
the end, with the machine. Everything stops by itself; child processes and PostgreSQL
databases are removed on the way out, failed or not.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import contextlib
import hashlib
import hmac
import json
import os
import re
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
from cryptography.fernet import Fernet

import relaybox
from bench import procs
from bench.httpc import Pool
from bench.seed import REDIRECT, Account, SandboxControl, seed_instances
from relaybox.config import Settings

APP_KEY, APP_SECRET = "bench-app", "bench-app-secret"
USER, ORG = "bench-user-Vx3Qh8Lm1Zr6Tc9Wb4Np7Ks2", "bench-org-Fj5Gd0Ya8Eu3Mi6Ro1Sw9Hb4"
AUTH = {"Authorization": f"User {USER}, Organization {ORG}"}
SIGNATURE_KEY = "bench-signature-key"
DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
RELAYBOX_HOOK = "/elements/api-v2/events/dropbox"
BASELINE_HOOK = "/webhook"
API_CONNECT_LIMIT = 50  # up to this many instances are created through the API, else seeded

SCENARIOS = ("throughput", "latency", "fanout", "ingest", "memory")
FULL = {
    "accounts": 20,
    "uploads": 5000,
    "concurrency": 32,
    "rate": 100.0,
    "latency_seconds": 20.0,
    "fanout": "500,1000",
    "ingest_seconds": 10,
    "ingest_runs": 3,
    "memory_instances": 10000,
    "memory_rounds": 2,
}
QUICK = {
    "accounts": 20,
    "uploads": 400,
    "concurrency": 32,
    "rate": 50.0,
    "latency_seconds": 4.0,
    "fanout": "150",
    "ingest_seconds": 3,
    "ingest_runs": 1,
    "memory_instances": 300,
    "memory_rounds": 1,
}


def log(text: str) -> None:
    print(text, flush=True)


# ----------------------------------------------------------------------------- results


@dataclass
class Row:
    scenario: str
    figure: str
    fmt: str  # format of one value, e.g. "{:.0f}"
    baseline: str  # what the baseline is, for the table
    values: dict[str, float | None] = field(default_factory=dict)


class Report:
    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], Row] = {}
        self.notes: list[str] = []

    def add(
        self,
        scenario: str,
        figure: str,
        target: str,
        value: float | None,
        fmt: str = "{:.0f}",
        baseline: str = "handwritten",
    ) -> None:
        row = self.rows.setdefault(
            (scenario, figure), Row(scenario, figure, fmt, baseline=baseline)
        )
        row.values[target] = value

    def ratio(self, scenario: str, figure: str, target: str) -> str:
        row = self.rows.get((scenario, figure))
        if row is None:
            return ""
        base, value = row.values.get("baseline"), row.values.get(target)
        if target == "baseline" or base is None or value is None or base == 0:
            return ""
        return f" ({value / base:.2f}x baseline)"

    def table(self, targets: list[str]) -> str:
        header = ["scenario", "figure", "baseline"]
        for target in targets:
            if target != "baseline":
                header += [target, "ratio"]
        lines = [header]
        for row in self.rows.values():
            base = row.values.get("baseline")
            cells = [row.scenario, row.figure, _fmt(row.fmt, base) + f" [{row.baseline}]"]
            for target in targets:
                if target == "baseline":
                    continue
                value = row.values.get(target)
                cells.append(_fmt(row.fmt, value))
                ok = value is not None and base not in (None, 0)
                cells.append(f"{value / base:.2f}x" if ok else "-")  # type: ignore[operator]
            lines.append(cells)
        widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
        out = []
        for n, line in enumerate(lines):
            out.append("  ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)))
            if n == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)

    def json(self) -> list[dict[str, Any]]:
        return [
            {"scenario": r.scenario, "figure": r.figure, "baseline": r.baseline, **r.values}
            for r in self.rows.values()
        ]


def _fmt(fmt: str, value: float | None) -> str:
    return "-" if value is None else fmt.format(value)


# ----------------------------------------------------------------------------- PostgreSQL

CREATED_DATABASES: set[str] = set()


def _admin_dsn(url: str) -> str:
    return url.replace("+asyncpg", "")


async def create_database(url: str) -> tuple[str, str]:
    """A fresh database on the server of `url`: (its SQLAlchemy URL, its name)."""
    name = f"relaybox_suite_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    admin = await asyncpg.connect(_admin_dsn(url))
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    CREATED_DATABASES.add(name)
    return url.rpartition("/")[0] + "/" + name, name


async def drop_database(url: str, name: str) -> None:
    admin = await asyncpg.connect(_admin_dsn(url))
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()
    CREATED_DATABASES.discard(name)


def _drop_leftovers(url: str) -> None:
    """atexit: drop the databases a failure left behind (the event loop is gone by now)."""
    for name in list(CREATED_DATABASES):
        with contextlib.suppress(Exception):
            asyncio.run(drop_database(url, name))


# ----------------------------------------------------------------------------- deployment


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("RELAYBOX_")}


def dropbox_signature(body: bytes) -> str:
    return hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()


def webhook_body(accounts: list[Account]) -> bytes:
    """A Dropbox webhook naming `accounts`, shaped like the sandbox's (and Dropbox's)."""
    ordered = sorted(accounts, key=lambda a: a.account_id)
    body = {
        "list_folder": {"accounts": [a.account_id for a in ordered]},
        "delta": {"users": [a.uid for a in ordered]},
    }
    return json.dumps(body).encode()


@dataclass
class Deployment:
    target: str
    http: httpx.AsyncClient
    sandbox: SandboxControl
    sandbox_url: str
    receiver_url: str
    relay_url: str
    hook_path: str
    pids: dict[str, int]
    accounts: list[Account]
    database_url: str | None = None
    pg_name: str | None = None
    settings: Settings | None = None
    rss_started: float = 0.0

    @property
    def relay_pid(self) -> int:
        return self.pids["relay"]

    def window(self) -> Window:
        return Window(self)

    async def pg_counters(self) -> dict[str, float]:
        """PostgreSQL's counters for this database: sessions opened, commits (PG 14+)."""
        if self.pg_name is None or self.database_url is None:
            return {}
        connection = await asyncpg.connect(_admin_dsn(self.database_url))
        try:
            row = await connection.fetchrow(
                "SELECT sessions, xact_commit FROM pg_stat_database WHERE datname = $1",
                self.pg_name,
            )
        finally:
            await connection.close()
        return {"pg sessions": float(row["sessions"]), "pg commits": float(row["xact_commit"])}

    async def receiver_stats(self) -> dict[str, Any]:
        return dict((await self.http.get(f"{self.receiver_url}/_stats")).json())

    async def wait_events(self, unique: int, timeout: float) -> dict[str, Any]:
        """The receiver's stats once it holds `unique` distinct events (or after `timeout`)."""
        answer = await self.http.get(
            f"{self.receiver_url}/_wait",
            params={"unique": unique, "timeout": timeout},
            timeout=timeout + 30,
        )
        return dict(answer.json())

    async def arrivals(self) -> dict[tuple[str, str], float]:
        answer = await self.http.get(f"{self.receiver_url}/_dump", timeout=120)
        return {(a, p): t for t, a, p in answer.json()}

    async def upload_all(self, items: list[tuple[str, str]], concurrency: int) -> list[float]:
        """Upload one small file per (account, path); the time each upload was answered."""
        pool = Pool(self.sandbox_url, concurrency)
        answered = [0.0] * len(items)

        async def one(n: int) -> None:
            account, path = items[n]
            answered[n] = await upload(pool, account, path)

        try:
            await asyncio.gather(*(one(n) for n in range(len(items))))
        finally:
            pool.close()
        return answered

    async def send_webhook(self, accounts: list[Account]) -> tuple[int, float, float]:
        """(status, sent at, answered at) of one signed webhook naming `accounts`."""
        body = webhook_body(accounts)
        headers = {"Content-Type": "application/json", "X-Dropbox-Signature": "x"}
        headers["X-Dropbox-Signature"] = dropbox_signature(body)
        pool = Pool(self.relay_url, 1)
        try:
            sent = time.monotonic()
            status, _ = await pool.request("POST", self.hook_path, body, headers)
            return status, sent, time.monotonic()
        finally:
            pool.close()


class Window:
    """CPU seconds of the run's processes (and PostgreSQL's counters) between start and stop."""

    def __init__(self, deployed: Deployment) -> None:
        self.deployed = deployed
        self.cpu = procs.CPUWindow(deployed.pids, postgres=deployed.pg_name)
        self.before: dict[str, float] = {}

    async def start(self) -> None:
        self.before = await self.deployed.pg_counters()
        self.cpu.start()

    async def stop(self) -> dict[str, float]:
        used = await self.cpu.stop()
        await asyncio.sleep(1.1 if self.before else 0)  # backends publish counters each 1 s
        after = await self.deployed.pg_counters()
        # minus the one session (and its commit) that read the counters
        return used | {k: after[k] - self.before[k] - 1 for k in after}


async def upload(pool: Pool, account: str, path: str) -> float:
    status, body = await pool.request(
        "PUT", f"/_sandbox/accounts/{account}/files?path={quote(path, safe='/')}", b"x"
    )
    if status != 200:
        raise RuntimeError(f"upload {path} to {account}: {status} {body[:200]!r}")
    return time.monotonic()


def relaybox_env(
    tmp: Path, database_url: str, port: int, sandbox_url: str
) -> tuple[dict[str, str], Settings]:
    relay = f"http://127.0.0.1:{port}"
    values = {
        "RELAYBOX_DATABASE_URL": database_url,
        "RELAYBOX_DATA_DIR": str(tmp / "data"),
        "RELAYBOX_SECRET_KEY": Fernet.generate_key().decode(),
        "RELAYBOX_PUBLIC_URL": relay,
        "RELAYBOX_BOOTSTRAP_USER_SECRET": USER,
        "RELAYBOX_BOOTSTRAP_ORG_SECRET": ORG,
        "RELAYBOX_ALLOW_PRIVATE_CALLBACKS": "true",
        **{f"RELAYBOX_DROPBOX_{h}_URL": sandbox_url for h in ("API", "CONTENT", "NOTIFY", "WWW")},
    }
    settings = Settings(**{k[9:].lower(): v for k, v in values.items()})  # type: ignore[arg-type]
    return {**clean_env(), **values}, settings


async def connect_through_api(
    http: httpx.AsyncClient, control: SandboxControl, relay: str, accounts: list[Account], cb: str
) -> None:
    gate = asyncio.Semaphore(4)

    async def one(n: int, account: Account) -> None:
        async with gate:
            code = await control.authorize(APP_KEY, account.account_id)
            body = {
                "element": {"key": "dropbox"},
                "providerData": {"code": code},
                "name": f"bench-{n}",
                "configuration": {
                    "oauth.api.key": APP_KEY,
                    "oauth.api.secret": APP_SECRET,
                    "oauth.callback.url": REDIRECT,
                    "event.notification.enabled": True,
                    "event.notification.callback.url": cb,
                    "event.notification.signature.key": SIGNATURE_KEY,
                    "event.vendor.type": "webhooks",
                },
            }
            answer = await http.post(f"{relay}/elements/api-v2/instances", json=body, headers=AUTH)
            if answer.status_code != 200:
                raise RuntimeError(f"POST /instances: {answer.status_code} {answer.text[:300]}")

    await asyncio.gather(*(one(n, a) for n, a in enumerate(accounts)))


def start(stack: AsyncExitStack, name: str, args: list[str], env: dict[str, str]) -> procs.Child:
    child = procs.Child(name, args, env)
    stack.callback(child.stop)
    return child


@contextlib.asynccontextmanager
async def deployment(
    target: str,
    options: argparse.Namespace,
    *,
    accounts: int,
    sandbox_webhooks: bool,
    measure_rss: bool = False,
) -> AsyncIterator[Deployment]:
    """Sandbox, receiver and relay processes for one run, with `accounts` connected accounts.

    `target`: "baseline" (the handwritten relay), "relaybox-sqlite" or "relaybox-postgresql".
    With `sandbox_webhooks` the sandbox app's webhook URI is the relay's (and verified before
    this yields); without, the sandbox sends no webhooks.
    """
    async with AsyncExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="relaybox-suite-")))
        http = await stack.enter_async_context(httpx.AsyncClient(timeout=120))
        sandbox_port, receiver_port, relay_port = (procs.free_port() for _ in range(3))
        sandbox_url = f"http://127.0.0.1:{sandbox_port}"
        receiver_url = f"http://127.0.0.1:{receiver_port}"
        relay_url = f"http://127.0.0.1:{relay_port}"
        env = clean_env()
        sandbox_child = start(
            stack, "sandbox", [procs.RELAYBOX, "sandbox", "--port", str(sandbox_port)], env
        )
        receiver_child = start(
            stack,
            "receiver",
            [
                procs.PYTHON,
                "-m",
                "bench.receiver",
                f"--port={receiver_port}",
                f"--key={SIGNATURE_KEY}",
            ],
            env,
        )
        await asyncio.gather(
            sandbox_child.ready(f"{sandbox_url}/_sandbox/apps"),
            receiver_child.ready(f"{receiver_url}/_stats"),
        )
        control = SandboxControl(http, sandbox_url)
        callback = f"{receiver_url}/events"
        deployed = Deployment(
            target=target,
            http=http,
            sandbox=control,
            sandbox_url=sandbox_url,
            receiver_url=receiver_url,
            relay_url=relay_url,
            hook_path=RELAYBOX_HOOK if target.startswith("relaybox") else BASELINE_HOOK,
            pids={"sandbox": sandbox_child.pid, "receiver": receiver_child.pid},
            accounts=[],
        )
        hook_uri = f"{relay_url}{deployed.hook_path}" if sandbox_webhooks else None
        await control.register_app(APP_KEY, APP_SECRET, hook_uri)
        if target.startswith("relaybox"):
            if target.endswith("postgresql"):
                url, name = await create_database(options.postgres)
                stack.push_async_callback(drop_database, options.postgres, name)
                deployed.database_url, deployed.pg_name = url, name
            else:
                deployed.database_url = f"sqlite+aiosqlite:///{tmp}/relaybox.db"
            relay_env, settings = relaybox_env(tmp, deployed.database_url, relay_port, sandbox_url)
            deployed.settings = settings
            relay = start(
                stack,
                "relaybox",
                [procs.RELAYBOX, "serve", "--host", "127.0.0.1", "--port", str(relay_port)],
                relay_env,
            )
            await relay.ready(f"{relay_url}/readyz", timeout=120)
            deployed.pids["relay"] = relay.pid
            if measure_rss:
                await asyncio.sleep(1)
                deployed.rss_started = procs.rss_mib(relay.pid)
            deployed.accounts = await control.new_accounts("bench", accounts)
            if accounts <= API_CONNECT_LIMIT:
                await connect_through_api(http, control, relay_url, deployed.accounts, callback)
            else:
                await seed_instances(
                    settings,
                    control,
                    deployed.accounts,
                    app_key=APP_KEY,
                    app_secret=APP_SECRET,
                    callback=callback,
                    signature_key=SIGNATURE_KEY,
                    name_prefix="bench",
                )
        else:
            deployed.accounts = await control.new_accounts("bench", accounts)
            listing = tmp / "accounts.txt"
            listing.write_text("".join(f"{a.account_id}\n" for a in deployed.accounts))
            relay = start(
                stack,
                "handwritten relay",
                [
                    procs.PYTHON,
                    "-m",
                    "bench.handwritten_relay",
                    "--port",
                    str(relay_port),
                    "--sandbox",
                    sandbox_url,
                    "--app-key",
                    APP_KEY,
                    "--app-secret",
                    APP_SECRET,
                    "--accounts",
                    str(listing),
                    "--callback",
                    callback,
                    "--signature-key",
                    SIGNATURE_KEY,
                ],
                env,
            )
            await relay.ready(f"{relay_url}/webhook?challenge=up", timeout=60 + accounts * 0.05)
            deployed.pids["relay"] = relay.pid
            if measure_rss:
                await asyncio.sleep(1)
                deployed.rss_started = procs.rss_mib(relay.pid)
        if sandbox_webhooks:
            await wait_verified(control)
        yield deployed


async def wait_verified(control: SandboxControl, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        apps = (await control.control("GET", "/apps"))["apps"]
        if all(app["verified"] for app in apps if app["webhook_uri"]):
            return
        await asyncio.sleep(0.1)
    raise RuntimeError("the sandbox did not verify the relay's webhook URI")


# ----------------------------------------------------------------------------- profile


@contextlib.asynccontextmanager
async def profiled(pid: int | None, out: Path, native: bool = False) -> AsyncIterator[None]:
    """py-spy sampling `pid` (100 Hz, non-blocking, raw collapsed stacks) inside the block."""
    if pid is None:
        yield
        return
    pyspy = str(Path(sys.executable).with_name("py-spy"))
    command = [pyspy, "record", "-p", str(pid), "-o", str(out), "--format", "raw"]
    # --native sees C code (SQLite, the event loop, system calls) but pauses the process
    # for each sample, which slows it; without it py-spy samples without pausing.
    command += ["--rate", "100", "--native" if native else "--nonblocking"]
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    procs.CHILDREN[process.pid] = process
    await asyncio.sleep(1.0)  # attached and sampling
    try:
        yield
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGINT)  # py-spy writes its file on Ctrl-C
        try:
            _, err = await asyncio.to_thread(process.communicate, timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            _, err = process.communicate()
        procs.CHILDREN.pop(process.pid, None)
        if not out.exists():
            log(f"    py-spy wrote nothing: {err.decode(errors='replace')[-500:]}")


def _frame(frame: str) -> str:
    """``func (path:line)`` as ``func (module path)``: one entry per function, not per line."""
    frame = re.sub(r":\d+\)$", ")", frame)
    frame = re.sub(r"\(/.*?/site-packages/", "(", frame)
    return frame.replace(f"({Path.cwd()}/", "(")


WAITING = re.compile(r"SimpleQueue_get|epoll_pwait \(libc[^;]*$")


def summarize_profile(path: Path, top: int = 15) -> list[str]:
    """The `top` functions by own time (samples where the function is the innermost frame),
    then relaybox's own functions by inclusive time, from py-spy's raw (collapsed) output.

    Without ``--native`` py-spy charges native code to the innermost Python frame: the own
    time of ``Runner.run`` is the event loop itself (uvloop, in C), that of aiosqlite's
    ``_connection_worker_thread`` is SQLite running in aiosqlite's threads.
    """
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = threads = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        if WAITING.search(stack):
            continue  # --native counts threads blocked in these as running
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            if "(relaybox/" in frame and "relaybox/cli.py" not in frame:
                inclusive[frame] += count
        if "threading.py" in frames[0]:
            threads += count
        total += count
    if not total:
        return ["    (no samples)"]
    lines = [
        f"    {total} samples of running threads at 100 Hz ({total / 100:.1f} s; "
        f"{100 * threads / total:.0f} % outside the main thread); own time:"
    ]
    for name, count in own.most_common(top):
        lines.append(f"    {100 * count / total:5.1f} %  {name}")
    lines.append("    relaybox functions by inclusive time:")
    for name, count in inclusive.most_common(10):
        lines.append(f"    {100 * count / total:5.1f} %  {name}")
    return lines


# ----------------------------------------------------------------------------- scenarios

Scenario = Callable[[str, argparse.Namespace, Report], Awaitable[None]]


def profile_target(
    options: argparse.Namespace, scenario: str, deployed: Deployment
) -> tuple[Path, int | None]:
    """Where to write the profile, and the pid to profile (None: not this run)."""
    folder = Path(tempfile.gettempdir()) / "relaybox-profiles"
    folder.mkdir(exist_ok=True)
    path = folder / f"{scenario}-{deployed.target}-{len(deployed.accounts)}-{os.getpid()}.txt"
    wanted = options.profile and scenario in options.profile_scenarios
    return path, deployed.relay_pid if wanted and deployed.target != "baseline" else None


def show_profile(pid: int | None, path: Path, target: str) -> None:
    if pid is not None and path.exists():
        log(f"    profile of relaybox ({target}), top 15 functions by own time ({path}):")
        for line in summarize_profile(path):
            log(line)


def cpu_text(cpu: dict[str, float]) -> str:
    """ "relay 1.2, sandbox 0.3, ..." (CPU seconds), then PostgreSQL's counters if any."""
    text = ", ".join(f"{k} {v:.1f}" for k, v in cpu.items() if not k.startswith("pg "))
    counters = ", ".join(f"{v:.0f} {k[3:]}" for k, v in cpu.items() if k.startswith("pg "))
    return text + (f"; PostgreSQL: {counters}" if counters else "")


def relay_cpu(cpu: dict[str, float]) -> float:
    return cpu["relay"] + cpu.get("postgres", 0.0)


async def throughput(target: str, options: argparse.Namespace, report: Report) -> None:
    count = options.uploads
    async with deployment(
        target, options, accounts=options.accounts, sandbox_webhooks=True
    ) as deployed:
        accounts = [a.account_id for a in deployed.accounts]
        items = [(accounts[n % len(accounts)], f"/t{n}.txt") for n in range(count)]
        profile, pid = profile_target(options, "throughput", deployed)
        async with profiled(pid, profile, options.profile_native):
            window = deployed.window()
            await window.start()
            started = time.monotonic()
            await deployed.upload_all(items, options.concurrency)
            uploaded = time.monotonic() - started
            stats = await deployed.wait_events(count, timeout=max(120.0, count / 10))
            cpu = await window.stop()
        done = stats["unique"] >= count
        elapsed = stats["last_arrival"] - started
        rate = count / elapsed if done else None
        per_cpu = count / relay_cpu(cpu) if done else None
        report.add("throughput", "events/s", target, rate)
        report.add("throughput", "events per relay CPU-s", target, per_cpu)
        if done:
            log(
                f"  {target}: {count} events in {elapsed:.2f} s = {rate:.0f} events/s"
                f"{report.ratio('throughput', 'events/s', target)}; uploads answered after "
                f"{uploaded:.2f} s; {per_cpu:.0f} events per relay CPU-second"
                f"{report.ratio('throughput', 'events per relay CPU-s', target)}"
            )
        else:
            log(f"  {target}: TIMEOUT, {stats['unique']} of {count} events arrived")
        log(
            f"    CPU seconds: {cpu_text(cpu)}; receiver: {stats['posts']} POSTs, "
            f"{stats['events']} events ({stats['events'] - stats['unique']} duplicates), "
            f"{stats['bad_signatures']} bad signatures"
        )
        show_profile(pid, profile, target)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


async def latency(target: str, options: argparse.Namespace, report: Report) -> None:
    total = int(options.rate * options.latency_seconds)
    async with deployment(
        target, options, accounts=options.accounts, sandbox_webhooks=True
    ) as deployed:
        accounts = [a.account_id for a in deployed.accounts]
        pool = Pool(deployed.sandbox_url, options.concurrency)
        answered: dict[tuple[str, str], float] = {}
        late = 0

        async def one(account: str, path: str) -> None:
            answered[(account, path)] = await upload(pool, account, path)

        tasks = []
        started = time.monotonic()
        try:
            for n in range(total):
                due = started + n / options.rate
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                elif delay < -0.05:
                    late += 1
                account = accounts[n % len(accounts)]
                tasks.append(asyncio.create_task(one(account, f"/l{n}.txt")))
            await asyncio.gather(*tasks)
        finally:
            for task in tasks:
                task.cancel()
            pool.close()
        sent_for = time.monotonic() - started
        stats = await deployed.wait_events(total, timeout=120)
        arrivals = await deployed.arrivals()
        hooks = await webhook_answers(deployed)
    delays = {key: arrivals[key] - at for key, at in answered.items() if key in arrivals}
    # the part after the relay answered the sandbox's webhook that announced the change
    after_hook = []
    for key, at in answered.items():
        hook = next((t for t, named in hooks if t >= at and key[0] in named), None)
        if hook is not None and key in arrivals:
            after_hook.append(arrivals[key] - hook)
    missing = total - len(delays)
    if not delays:
        log(f"  {target}: no event arrived")
        return
    values = list(delays.values())
    by_account: dict[str, list[float]] = {}
    for (account, _), value in delays.items():
        by_account.setdefault(account, []).append(value)
    medians = [statistics.median(v) for v in by_account.values()]
    p50, p99 = percentile(values, 0.5) * 1000, percentile(values, 0.99) * 1000
    report.add("latency", "p50 ms", target, p50)
    report.add("latency", "p99 ms", target, p99)
    report.add("latency", "slowest instance median ms", target, max(medians) * 1000)
    hook_p50 = percentile(after_hook, 0.5) * 1000 if after_hook else None
    hook_p99 = percentile(after_hook, 0.99) * 1000 if after_hook else None
    report.add("latency", "p50 ms after webhook answered", target, hook_p50)
    report.add("latency", "p99 ms after webhook answered", target, hook_p99)
    report.add("latency", "instance medians max/min", target, max(medians) / min(medians), "{:.2f}")
    log(
        f"  {target}: {len(values)} events of {total} uploads in {sent_for:.1f} s"
        f" ({late} sent >50 ms late): p50 {p50:.0f} ms"
        f"{report.ratio('latency', 'p50 ms', target)}, p99 {p99:.0f} ms"
        f"{report.ratio('latency', 'p99 ms', target)}; instance medians "
        f"{min(medians) * 1000:.0f}..{max(medians) * 1000:.0f} ms"
        f" (max/min {max(medians) / min(medians):.2f}); {missing} missing;"
        f" {stats['bad_signatures']} bad signatures"
    )
    if hook_p50 is not None and hook_p99 is not None:
        log(
            f"    from the relay's answer to the sandbox's webhook to the event: p50 "
            f"{hook_p50:.0f} ms, p99 {hook_p99:.0f} ms ({len(hooks)} webhooks, "
            f"{len(after_hook)} events matched)"
        )


async def webhook_answers(deployed: Deployment) -> list[tuple[float, set[str]]]:
    """When the relay answered each of the sandbox's webhooks (on this process's monotonic
    clock), and the accounts each named, from the sandbox's log (its last 1,000 entries)."""
    offset = time.time() - time.monotonic()
    entries = (await deployed.sandbox.control("GET", "/webhooks/log"))["entries"]
    out = []
    for entry in entries:
        if entry.get("kind") == "notification" and entry.get("status") == 200:
            named = set(json.loads(entry["body"])["list_folder"]["accounts"])
            out.append((float(entry["time"]) - offset, named))
    return sorted(out, key=lambda item: item[0])


async def fanout(target: str, options: argparse.Namespace, report: Report) -> None:
    for size in options.fanout_sizes:
        async with deployment(target, options, accounts=size, sandbox_webhooks=False) as deployed:
            items = [(a.account_id, "/fan.txt") for a in deployed.accounts]
            await deployed.upload_all(items, options.concurrency)
            await asyncio.sleep(0.5)
            profile, pid = profile_target(options, "fanout", deployed)
            async with profiled(pid, profile, options.profile_native):
                window = deployed.window()
                await window.start()
                status, sent, acked = await deployed.send_webhook(deployed.accounts)
                stats = await deployed.wait_events(size, timeout=max(120.0, size / 5))
                cpu = await window.stop()
        figure = f"{size} accounts: s to all"
        done = stats["unique"] >= size
        seconds = stats["last_arrival"] - sent if done else None
        report.add("fanout", figure, target, seconds, "{:.2f}")
        report.add("fanout", f"{size} accounts: webhook ack ms", target, (acked - sent) * 1000)
        if seconds is None:
            log(f"  {target}, {size} accounts: TIMEOUT, {stats['unique']} of {size} events")
            continue
        log(
            f"  {target}, {size} accounts: webhook answered {status} after "
            f"{(acked - sent) * 1000:.0f} ms; all {size} events after {seconds:.2f} s"
            f"{report.ratio('fanout', figure, target)} ({size / seconds:.0f} events/s); "
            f"CPU seconds: {cpu_text(cpu)}"
        )
        show_profile(pid, profile, target)


WRK_SCRIPT = """
wrk.method = "POST"
wrk.body = [==[{body}]==]
wrk.headers["Content-Type"] = "application/json"
wrk.headers["X-Dropbox-Signature"] = "{signature}"
local threads = {{}}
function setup(thread) table.insert(threads, thread) end
function init(args) ok = 0; other = 0 end
function response(status, headers, body)
  if status >= 200 and status < 300 then ok = ok + 1 else other = other + 1 end
end
function done(summary, latency, requests)
  local o, n = 0, 0
  for _, t in ipairs(threads) do o = o + t:get("ok"); n = n + t:get("other") end
  io.write(string.format("BENCH ok=%d other=%d\\n", o, n))
end
"""


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


def parse_wrk(output: str) -> dict[str, float]:
    out: dict[str, float] = {}
    if found := re.search(r"(\d+) requests in ([\d.]+)(m?s)", output):
        out["requests"] = float(found[1])
        out["seconds"] = float(found[2]) * (60 if found[3] == "m" else 1)
    if found := re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE):
        out["p99_ms"] = _ms(found[1])
    if found := re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE):
        out["p50_ms"] = _ms(found[1])
    if found := re.search(r"BENCH ok=(\d+) other=(\d+)", output):
        out["ok"], out["other"] = float(found[1]), float(found[2])
    found = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    out["non2xx"] = float(found[1]) if found else 0.0
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    out["socket_errors"] = float(sum(int(g) for g in errors.groups())) if errors else 0.0
    return out


async def run_wrk(url: str, body: bytes, options: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    script = tmp / "webhook.lua"
    script.write_text(
        WRK_SCRIPT.format(body=body.decode(), signature=dropbox_signature(body)).lstrip()
    )
    command = ["wrk", "-t2", f"-c{options.ingest_connections}", f"-d{options.ingest_seconds}s"]
    command += ["--latency", "-s", str(script), url]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), options.ingest_seconds + 60)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()
    text = output.decode(errors="replace")
    figures: dict[str, Any] = dict(parse_wrk(text))
    figures["output"] = text
    if "ok" not in figures:
        raise RuntimeError(f"wrk: {text[-2000:]}")
    return figures


async def wrk_runs(
    url: str, body: bytes, options: argparse.Namespace, tmp: Path
) -> list[dict[str, Any]]:
    """`--ingest-runs` runs of wrk, one after the other, against the same server."""
    return [await run_wrk(url, body, options, tmp) for _ in range(options.ingest_runs)]


async def inbox_rows(deployed: Deployment) -> int:
    assert deployed.database_url is not None
    if deployed.pg_name is not None:
        connection = await asyncpg.connect(_admin_dsn(deployed.database_url))
        try:
            return int(await connection.fetchval("SELECT count(*) FROM inbox"))
        finally:
            await connection.close()
    path = deployed.database_url.split("///", 1)[1]

    def count() -> int:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as db:
            return int(db.execute("SELECT count(*) FROM inbox").fetchone()[0])

    return await asyncio.to_thread(count)


async def describe_database(deployed: Deployment) -> str:
    """The relaybox database's name and tables, for an error message."""
    try:
        if deployed.pg_name is not None and deployed.database_url is not None:
            connection = await asyncpg.connect(_admin_dsn(deployed.database_url))
            try:
                name = await connection.fetchval("SELECT current_database()")
                tables = await connection.fetch(
                    "SELECT schemaname || '.' || tablename AS t FROM pg_tables"
                    " WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"
                )
            finally:
                await connection.close()
            return f"database {name} has tables {sorted(r['t'] for r in tables)}"
        return f"database {deployed.database_url}"
    except Exception as error:
        return f"and describing the database failed too: {type(error).__name__}: {error}"


async def ingest(target: str, options: argparse.Namespace, report: Report) -> None:
    with tempfile.TemporaryDirectory(prefix="relaybox-wrk-") as folder:
        tmp = Path(folder)
        if target == "baseline":
            port = procs.free_port()
            body = webhook_body([Account("dbid:AAbenchbenchbenchbenchbenchbenchben", 12345)])
            async with procs.child(
                "bare",
                [procs.PYTHON, "-m", "bench.bare", "--port", str(port)],
                f"http://127.0.0.1:{port}/",
                env=clean_env(),
            ) as bare:
                window = procs.CPUWindow({"relay": bare.pid})
                window.start()
                runs = await wrk_runs(f"http://127.0.0.1:{port}{RELAYBOX_HOOK}", body, options, tmp)
                cpu = await window.stop()
            rows = None
        else:
            async with deployment(target, options, accounts=1, sandbox_webhooks=False) as deployed:
                body = webhook_body(deployed.accounts)
                before = await inbox_rows(deployed)
                profile, pid = profile_target(options, "ingest", deployed)
                window = deployed.window()
                await window.start()
                async with profiled(pid, profile, options.profile_native):
                    runs = await wrk_runs(
                        f"{deployed.relay_url}{RELAYBOX_HOOK}", body, options, tmp
                    )
                cpu = await window.stop()
                show_profile(pid, profile, target)
                await asyncio.sleep(1)
                try:
                    rows = await inbox_rows(deployed) - before
                except Exception as error:  # keep wrk's figures; say what the database holds
                    rows = None
                    log(
                        f"  {target}: counting the inbox after wrk failed: "
                        f"{type(error).__name__}: {error}; {await describe_database(deployed)}"
                    )
    # The median run: one run of wrk against a process whose answers wait on group commits
    # moves by a quarter from the next (docs/BENCHMARKS.md).
    result = sorted(runs, key=lambda run: run["ok"] / run["seconds"])[len(runs) // 2]
    acks = result["ok"] / result["seconds"]
    if len(runs) > 1:
        each = ", ".join(f"{run['ok'] / run['seconds']:.0f}" for run in runs)
        log(f"  {target}: {len(runs)} runs of wrk, acks/s {each}; the median run is reported")
    acknowledged = sum(run["ok"] for run in runs)
    report.add("ingest", "acks/s", target, acks, baseline="bare")
    report.add("ingest", "p99 ms", target, result.get("p99_ms"), "{:.1f}", baseline="bare")
    report.add("ingest", "non-2xx", target, result["other"], baseline="bare")
    durable = ""
    if rows is not None:
        verdict = "OK" if rows >= acknowledged else "LOST ACKNOWLEDGED WEBHOOKS"
        durable = (
            f"; inbox rows {rows} vs {acknowledged:.0f} 2xx seen by wrk in all runs: "
            f"{rows - acknowledged:+.0f} ({verdict})"
        )
    log(
        f"  {target}: {acks:.0f} acks/s{report.ratio('ingest', 'acks/s', target)}, "
        f"p50 {result.get('p50_ms', 0):.1f} ms, p99 {result.get('p99_ms', 0):.1f} ms, "
        f"{result['other']:.0f} non-2xx (wrk: {result['non2xx']:.0f} non-2xx/3xx, "
        f"{result['socket_errors']:.0f} socket errors){durable}; CPU seconds: {cpu_text(cpu)}"
    )


async def memory(target: str, options: argparse.Namespace, report: Report) -> None:
    size = options.memory_instances
    async with deployment(
        target, options, accounts=size, sandbox_webhooks=False, measure_rss=True
    ) as deployed:
        pid = deployed.relay_pid
        seeded = procs.rss_mib(pid)
        delivered = 0
        timings = []
        for round_ in range(options.memory_rounds):
            items = [(a.account_id, f"/m{round_}.txt") for a in deployed.accounts]
            await deployed.upload_all(items, options.concurrency)
            status, sent, _ = await deployed.send_webhook(deployed.accounts)
            if status != 200:
                raise RuntimeError(f"webhook answered {status}")
            delivered += size
            stats = await deployed.wait_events(delivered, timeout=max(180.0, size / 5))
            if stats["unique"] < delivered:
                raise RuntimeError(f"round {round_}: {stats['unique']} of {delivered} events")
            timings.append(stats["last_arrival"] - sent)
        await asyncio.sleep(2)
        rss = procs.rss_mib(pid)
    figure = f"RSS MiB, {size} instances"
    report.add("memory", figure, target, rss)
    log(
        f"  {target}: RSS {rss:.1f} MiB{report.ratio('memory', figure, target)}"
        f" after {options.memory_rounds} pass(es) over {size} instances (each: one change per"
        f" account, one webhook naming all; delivered in "
        f"{', '.join(f'{t:.1f}' for t in timings)} s); "
        + (
            f"{deployed.rss_started:.1f} MiB once its accounts were connected"
            if target == "baseline"
            else f"{deployed.rss_started:.1f} MiB at start (no instance), "
            f"{seeded:.1f} MiB once seeded"
        )
    )


RUNNERS: dict[str, Scenario] = {
    "throughput": throughput,
    "latency": latency,
    "fanout": fanout,
    "ingest": ingest,
    "memory": memory,
}


# ----------------------------------------------------------------------------- main


def describe(options: argparse.Namespace, scenario: str) -> str:
    if scenario == "throughput":
        return (
            f"{options.uploads} uploads over {options.accounts} accounts, "
            f"{options.concurrency} at a time; sandbox webhooks coalesced over 0.2 s"
        )
    if scenario == "latency":
        return (
            f"{options.rate:g} uploads/s for {options.latency_seconds:g} s over "
            f"{options.accounts} instances; arrival at the receiver - upload answered"
        )
    if scenario == "fanout":
        return (
            f"{', '.join(map(str, options.fanout_sizes))} accounts, one change each, "
            "then one signed webhook naming all of them"
        )
    if scenario == "ingest":
        return (
            f"wrk -t2 -c{options.ingest_connections} -d{options.ingest_seconds}s, signed "
            "webhook naming one account; baseline: bench/bare.py"
        )
    return (
        f"{options.memory_instances} instances, {options.memory_rounds} pass(es) over all; "
        "baseline: the handwritten relay holding the same accounts"
    )


async def preflight(options: argparse.Namespace) -> None:
    if "postgresql" in options.database_list:
        try:
            admin = await asyncpg.connect(_admin_dsn(options.postgres), timeout=10)
            await admin.close()
        except (OSError, asyncpg.PostgresError) as error:
            raise SystemExit(f"PostgreSQL at {options.postgres} unreachable: {error}") from None
    if "ingest" in options.scenarios and not _which("wrk"):
        raise SystemExit("wrk not found (apt-get install wrk), or leave out ingest")


def _which(name: str) -> bool:
    return any(
        os.access(os.path.join(folder, name), os.X_OK)
        for folder in os.environ.get("PATH", "").split(os.pathsep)
    )


async def run(options: argparse.Namespace) -> int:
    await preflight(options)
    targets = ["baseline"] + [f"relaybox-{db}" for db in options.database_list]
    report = Report()
    failures = 0
    started = time.monotonic()
    info = procs.machine_info()
    info["relaybox from"] = str(Path(relaybox.__file__).resolve().parent)
    log(f"relaybox benchmark suite ({'quick' if options.quick else 'full'} sizes)")
    log("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    for scenario in options.scenarios:
        log(f"\n[{scenario}] {describe(options, scenario)}")
        for target in targets:
            if procs.Stopping.now:
                raise SystemExit("stopped by a signal")
            began = time.monotonic()
            try:
                await asyncio.wait_for(
                    RUNNERS[scenario](target, options, report), options.run_timeout
                )
                if options.verbose:
                    log(f"    (run took {time.monotonic() - began:.1f} s)")
            except Exception as error:  # one failed run does not stop the others
                failures += 1
                log(f"  {target}: FAILED: {type(error).__name__}: {error}")
                if options.verbose:
                    traceback.print_exc()
    log(f"\nsummary ({time.monotonic() - started:.0f} s; ratio = relaybox / baseline)")
    log(report.table(targets))
    log(
        "baselines: handwritten = bench/handwritten_relay.py (no database), "
        "bare = bench/bare.py (200 to every POST)"
    )
    log("machine: " + ", ".join(f"{k} {v}" for k, v in info.items()))
    if options.json:
        Path(options.json).write_text(
            json.dumps({"machine": info, "figures": report.json()}, indent=2)
        )
    return 1 if failures else 0


def run_at(revision: str, argv: list[str]) -> int:
    """The suite (as it is in this tree) against relaybox as of `revision`, in a worktree.

    The tree may be changing under the benchmark (someone editing relaybox/ meanwhile):
    figures should belong to a commit. A detached worktree of `revision` goes in a
    temporary folder, this tree's bench/*.py are copied into it, and the suite runs there
    (with PYTHONPATH pointing at it, so every process imports that relaybox); the worktree
    is removed afterwards.
    """
    repo = Path(__file__).resolve().parent.parent
    commit = subprocess.run(
        ["git", "rev-parse", "--verify", f"{revision}^{{commit}}"],
        cwd=repo,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    folder = Path(tempfile.mkdtemp(prefix="relaybox-bench-at-"))
    subprocess.run(
        ["git", "worktree", "add", "--quiet", "--detach", str(folder), commit],
        cwd=repo,
        check=True,
    )
    child: subprocess.Popen[bytes] | None = None
    try:
        for source in (repo / "bench").glob("*.py"):
            (folder / "bench" / source.name).write_bytes(source.read_bytes())
        path = os.pathsep.join(filter(None, [str(folder), os.environ.get("PYTHONPATH")]))
        log(f"relaybox at {commit[:12]} in {folder} (bench/*.py from {repo})")
        child = subprocess.Popen(
            [sys.executable, "-m", "bench.suite", *argv],
            cwd=folder,
            env={**os.environ, "PYTHONPATH": path},
        )
        return child.wait()
    finally:
        if child is not None and child.poll() is None:  # interrupted: let it clean up
            child.send_signal(signal.SIGTERM)
            try:
                child.wait(timeout=90)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        subprocess.run(["git", "worktree", "remove", "--force", str(folder)], cwd=repo, check=False)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenarios, comma-separated")
    parser.add_argument("--databases", default="sqlite,postgresql")
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES, help="server for fresh databases")
    parser.add_argument(
        "--profile", action="store_true", help="py-spy relaybox (in throughput, see below)"
    )
    parser.add_argument(
        "--profile-native",
        action="store_true",
        help="py-spy --native: C frames too, but it pauses relaybox per sample (slower)",
    )
    parser.add_argument(
        "--profile-in", default="throughput", help="scenarios to profile: throughput,fanout,ingest"
    )
    parser.add_argument("--accounts", type=int, help="accounts for throughput and latency")
    parser.add_argument("--uploads", type=int, help="throughput: uploads")
    parser.add_argument("--concurrency", type=int, help="uploads in flight")
    parser.add_argument("--rate", type=float, help="latency: uploads per second")
    parser.add_argument("--latency-seconds", type=float)
    parser.add_argument("--fanout", help="fan-out sizes, comma-separated")
    parser.add_argument("--ingest-seconds", type=int)
    parser.add_argument("--ingest-connections", type=int, default=32)
    parser.add_argument(
        "--ingest-runs", type=int, help="wrk runs per target; the median is reported (3; quick 1)"
    )
    parser.add_argument("--memory-instances", type=int)
    parser.add_argument("--memory-rounds", type=int)
    parser.add_argument("--run-timeout", type=float, default=1800, help="seconds per run")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument(
        "--at",
        metavar="REVISION",
        help="benchmark relaybox as of this commit (a temporary git worktree), e.g. HEAD",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="tracebacks of failures")
    options = parser.parse_args(argv)
    defaults = QUICK if options.quick else FULL
    for name, value in defaults.items():
        if getattr(options, name) is None:
            setattr(options, name, value)
    options.profile_scenarios = options.profile_in.replace("fan-out", "fanout").split(",")
    options.fanout_sizes = [int(n) for n in str(options.fanout).split(",") if n]
    options.scenarios = [s.strip().replace("fan-out", "fanout") for s in options.only.split(",")]
    unknown = set(options.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(sorted(unknown))}; know {SCENARIOS}")
    options.database_list = [d.strip() for d in options.databases.split(",") if d.strip()]
    if set(options.database_list) - {"sqlite", "postgresql"}:
        parser.error("--databases: sqlite and/or postgresql")
    return options


def main() -> None:
    options = parse()
    if options.at:
        argv, skip = [], False
        for arg in sys.argv[1:]:  # the same arguments without --at
            if skip:
                skip = False
            elif arg == "--at":
                skip = True
            elif not arg.startswith("--at="):
                argv.append(arg)
        if options.json:  # relative to where it was asked for, not the worktree
            argv += ["--json", str(Path(options.json).resolve())]
        sys.exit(run_at(options.at, argv))
    atexit.register(_drop_leftovers, options.postgres)
    sys.exit(asyncio.run(run(options)))


if __name__ == "__main__":
    main()
