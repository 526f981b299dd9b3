"""End-to-end throughput: Dropbox changes in, signed events out, on SQLite and PostgreSQL.

    .venv/bin/python bench/throughput.py [--changes 1000] [--postgres URL]

Runs the sandbox, relaybox (API, receiver, workers) and a callback receiver in this one
process, on free loopback ports, makes N uploads through the sandbox (which sends Dropbox
webhooks) and measures the time until the receiver holds every event. The baseline is the
same run on SQLite; PostgreSQL's figure is printed with its ratio to it.
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
import uuid
from pathlib import Path

import asyncpg

from tests.support.stack import running_stack

DEFAULT_POSTGRES = "postgresql+asyncpg://postgres@127.0.0.1:5432/test"


async def run(database_url: str, changes: int, concurrency: int) -> tuple[float, float]:
    """(seconds for all uploads, seconds until every event was delivered)."""
    with tempfile.TemporaryDirectory() as tmp:
        async with running_stack(Path(tmp), database_url, webhook_delay=0.05) as stack:
            account = await stack.new_account("bench@example.com")
            await stack.connect(account)
            gate = asyncio.Semaphore(concurrency)

            async def upload(n: int) -> None:
                async with gate:
                    await stack.upload(account, f"/bench/{n // 100}/f{n}.txt", b"x")

            started = time.perf_counter()
            await asyncio.gather(*(upload(n) for n in range(changes)))
            uploaded = time.perf_counter() - started
            await stack.receiver.wait_for(lambda r: len(r.events()) >= changes, timeout=600)
            return uploaded, time.perf_counter() - started


async def fresh_postgres(url: str) -> tuple[str, str]:
    name = f"relaybox_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url.replace("+asyncpg", ""))
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    return url.rpartition("/")[0] + "/" + name, name


async def drop_postgres(url: str, name: str) -> None:
    admin = await asyncpg.connect(url.replace("+asyncpg", ""))
    await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    await admin.close()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--changes", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--postgres", default=DEFAULT_POSTGRES)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        sqlite = f"sqlite+aiosqlite:///{tmp}/bench.db"
        up, total = await run(sqlite, args.changes, args.concurrency)
    print(
        f"sqlite:     {args.changes} changes uploaded in {up:.2f} s, all delivered after "
        f"{total:.2f} s: {args.changes / total:.0f} events/s"
    )
    url, name = await fresh_postgres(args.postgres)
    try:
        pg_up, pg_total = await run(url, args.changes, args.concurrency)
    finally:
        await drop_postgres(args.postgres, name)
    print(
        f"postgresql: {args.changes} changes uploaded in {pg_up:.2f} s, all delivered after "
        f"{pg_total:.2f} s: {args.changes / pg_total:.0f} events/s"
    )
    print(f"ratio postgresql/sqlite events/s: {total / pg_total:.2f}")


if __name__ == "__main__":
    asyncio.run(main())
