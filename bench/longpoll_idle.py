"""One relaybox process holding 2,000 longpoll instances: idle memory and CPU, event latency.

    .venv/bin/python -m bench.longpoll_idle [--instances 2000] [--idle-seconds 30]
        [--longpoll-timeout 30] [--changes 10]

Starts the Dropbox sandbox and `relaybox serve` as two child processes (SQLite in a
temporary folder) and a callback receiver in this process, then:

1. baseline: the relaybox process with no longpoll instance (one webhooks instance):
   RSS and CPU while idle, and the latency from a change to its delivered event;
2. seeds N longpoll instances straight into the database (one sandbox account each, with
   real tokens and cursors, secrets sealed by `InstanceService._seal`), waits until the
   process holds every one of their longpolls, and measures RSS and CPU while idle again;
3. the latency of a longpoll instance (connected through the API) while N are held.

CPU is the process's user+system time over the idle window (from /proc), as a percentage
of one core. Not part of `make test`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from bench.seed import SandboxControl, seed_instances
from relaybox.config import Settings
from relaybox.runtime import Runtime
from relaybox.store import tables
from relaybox.store.db import transaction
from tests.support.servers import CallbackReceiver, free_port, serving

APP_KEY, APP_SECRET = "bench-app", "bench-secret"
USER, ORG = "bench-user-Vx3Qh8Lm1Zr6Tc9Wb4Np7Ks2", "bench-org-Fj5Gd0Ya8Eu3Mi6Ro1Sw9Hb4"
AUTH = {"Authorization": f"User {USER}, Organization {ORG}"}
REDIRECT = "https://app.example.com/auth"
TICKS = os.sysconf("SC_CLK_TCK")


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


async def idle(pid: int, seconds: float) -> tuple[float, float]:
    """(RSS MiB at the end, CPU % of one core over the window)."""
    start_cpu, start = cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    used = cpu_seconds(pid) - start_cpu
    return rss_mib(pid), 100 * used / (time.monotonic() - start)


@contextlib.asynccontextmanager
async def child(args: list[str], env: dict[str, str], ready: str) -> AsyncIterator[int]:
    log = tempfile.TemporaryFile()  # noqa: SIM115 (kept open for the child's lifetime)
    process = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(400):
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get(ready)).status_code < 500:
                        break
                await asyncio.sleep(0.05)
            else:
                log.seek(0)
                raise RuntimeError(log.read().decode()[-3000:])
        yield process.pid
    finally:
        process.terminate()
        process.wait(timeout=60)
        log.close()


class Bench:
    def __init__(self, http: httpx.AsyncClient, sandbox: str, relaybox: str, receiver: str):
        self.http, self.sandbox, self.relaybox, self.receiver = http, sandbox, relaybox, receiver

    async def control(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = await self.http.request(method, f"{self.sandbox}/_sandbox{path}", **kwargs)
        answer.raise_for_status()
        return answer.json() if answer.content else None

    async def account(self, email: str) -> tuple[str, str]:
        """A new sandbox account and an authorization code for the bench app."""
        account = (await self.control("POST", "/accounts", json={"email": email}))["account_id"]
        code = await self.control(
            "POST",
            "/authorize",
            json={"app_key": APP_KEY, "account_id": account, "redirect_uri": REDIRECT},
        )
        return str(account), str(code["code"])

    async def connect(self, name: str, source: str, callback: str) -> str:
        account, code = await self.account(f"{name}@example.com")
        body = {
            "element": {"key": "dropbox"},
            "providerData": {"code": code},
            "name": name,
            "configuration": {
                "oauth.api.key": APP_KEY,
                "oauth.api.secret": APP_SECRET,
                "oauth.callback.url": REDIRECT,
                "event.notification.enabled": True,
                "event.notification.callback.url": callback,
                "event.vendor.type": source,
            },
        }
        answer = await self.http.post(
            f"{self.relaybox}/elements/api-v2/instances", json=body, headers=AUTH
        )
        answer.raise_for_status()
        return account

    async def latency(self, account: str, receiver: CallbackReceiver, changes: int) -> list[float]:
        """Seconds from each change (the sandbox's answer) to its event at the callback."""
        out = []
        for n in range(changes):
            before = len(receiver.events())
            started = time.monotonic()
            await self.control(
                "PUT", f"/accounts/{account}/files", params={"path": f"/f{n}.txt"}, content=b"x"
            )
            await receiver.wait_for(lambda r, b=before: len(r.events()) > b, timeout=60)
            out.append(time.monotonic() - started)
            await asyncio.sleep(0.2)
        return out


async def seed(settings: Settings, bench: Bench, count: int) -> None:
    """Insert `count` longpoll instances, each on its own sandbox account, in one go."""
    sandbox = SandboxControl(bench.http, bench.sandbox)
    accounts = await sandbox.new_accounts("idle", count)
    await seed_instances(
        settings,
        sandbox,
        accounts,
        app_key=APP_KEY,
        app_secret=APP_SECRET,
        callback=f"{bench.receiver}/idle",
        vendor_type="longpoll",
        name_prefix="idle",
    )


async def held(settings: Settings) -> int:
    runtime = await Runtime.start(settings, migrate=False)
    async with transaction(runtime.sessions) as session:
        count = await session.scalar(
            select(func.count()).where(tables.Instance.longpoll_owner.is_not(None))
        )
    await runtime.close()
    return int(count or 0)


def line(label: str, value: str) -> None:
    print(f"  {label:<44} {value}", flush=True)


def spread(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"median {statistics.median(ms):.0f} ms, max {ms[-1]:.0f} ms"


async def main(args: argparse.Namespace) -> None:
    folder = Path(tempfile.mkdtemp(prefix="relaybox-bench-"))
    sandbox_port, relaybox_port = free_port(), free_port()
    sandbox, relaybox = f"http://127.0.0.1:{sandbox_port}", f"http://127.0.0.1:{relaybox_port}"
    env = {
        **os.environ,
        "RELAYBOX_DATA_DIR": str(folder),
        "RELAYBOX_SECRET_KEY": Fernet.generate_key().decode(),
        "RELAYBOX_PUBLIC_URL": relaybox,
        "RELAYBOX_BOOTSTRAP_USER_SECRET": USER,
        "RELAYBOX_BOOTSTRAP_ORG_SECRET": ORG,
        "RELAYBOX_ALLOW_PRIVATE_CALLBACKS": "true",
        "RELAYBOX_LONGPOLL_TIMEOUT": str(args.longpoll_timeout),
        **{f"RELAYBOX_DROPBOX_{h}_URL": sandbox for h in ("API", "CONTENT", "NOTIFY", "WWW")},
    }
    settings = Settings(**{k[9:].lower(): v for k, v in env.items() if k.startswith("RELAYBOX_")})
    python = sys.executable
    hooks, polls = CallbackReceiver(), CallbackReceiver()
    print(f"relaybox longpoll benchmark: {args.instances} instances, {os.cpu_count()} CPUs, SQLite")
    async with (
        serving(hooks.app()) as hooks_url,
        serving(polls.app()) as polls_url,
        child(
            [python, "-m", "relaybox", "sandbox", "--port", str(sandbox_port)],
            env,
            f"{sandbox}/_sandbox/ui",
        ),
        child(
            [python, "-m", "relaybox", "serve", "--port", str(relaybox_port)],
            env,
            f"{relaybox}/readyz",
        ) as pid,
        httpx.AsyncClient(timeout=60) as http,
    ):
        bench = Bench(http, sandbox, relaybox, polls_url)
        await bench.control(
            "POST",
            "/apps",
            json={
                "app_key": APP_KEY,
                "app_secret": APP_SECRET,
                "webhook_uri": settings.dropbox_webhook_uri,
            },
        )
        hooked = await bench.connect("hooked", "webhooks", f"{hooks_url}/events")
        await asyncio.sleep(3)
        base_rss, base_cpu = await idle(pid, args.idle_seconds)
        hook_latency = await bench.latency(hooked, hooks, args.changes)
        print("baseline (no longpoll instance, one webhooks instance):")
        line("RSS", f"{base_rss:.1f} MiB")
        line("CPU while idle", f"{base_cpu:.2f} % of one core")
        line("change -> delivered event (webhooks)", spread(hook_latency))

        started = time.monotonic()
        await seed(settings, bench, args.instances - 1)
        measured = await bench.connect("measured", "longpoll", f"{polls_url}/events")
        while await held(settings) < args.instances:
            await asyncio.sleep(0.5)
        print(
            f"seeded and holding {args.instances} longpolls"
            f" after {time.monotonic() - started:.0f} s"
        )
        await asyncio.sleep(5)
        rss, cpu = await idle(pid, args.idle_seconds)
        poll_latency = await bench.latency(measured, polls, args.changes)
        print(f"holding {args.instances} longpolls (timeout {args.longpoll_timeout} s):")
        line(
            "RSS",
            f"{rss:.1f} MiB ({rss / base_rss:.2f}x baseline, "
            f"{(rss - base_rss) * 1024 / args.instances:.1f} KiB per instance)",
        )
        line("CPU while idle", f"{cpu:.2f} % of one core (baseline {base_cpu:.2f} %)")
        line("change -> delivered event (longpoll)", spread(poll_latency))
        ratio = statistics.median(poll_latency) / statistics.median(hook_latency)
        line("longpoll / webhooks median latency", f"{ratio:.2f}x")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--instances", type=int, default=2000)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    parser.add_argument("--longpoll-timeout", type=int, default=30)
    parser.add_argument("--changes", type=int, default=10)
    return parser.parse_args()


if __name__ == "__main__":
    asyncio.run(main(parse()))
