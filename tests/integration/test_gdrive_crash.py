"""Kill -9 at random moments loses no Google Drive change: relaybox runs as a real process
with a push channel, and is SIGKILLed again and again while it fetches and delivers."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from tests.support.gdrive import drive_relaybox_process
from tests.support.processes import all_delivered, run_phase
from tests.support.servers import CallbackReceiver, eventually

FILES = 60
RENAMES = 30
DELETES = 30  # 120 changes in all


async def test_sigkill_at_random_moments_loses_no_drive_change(
    tmp_path: Path, database_url: str
) -> None:
    rng = random.Random(20261205)
    receiver = CallbackReceiver(delay=0.05)
    receiver.statuses = [rng.choice([200, 200, 200, 500]) for _ in range(200)]
    async with drive_relaybox_process(tmp_path, database_url, receiver) as (server, stack):
        account = await stack.new_account("chaos@example.com")
        folders = {n: await stack.create(account, n, folder=True) for n in ("a", "b", "c")}
        instance = await stack.connect(account)

        async def channel_live() -> bool:
            return any(c["state"] == "live" for c in await stack.channels())

        assert await eventually(channel_live)
        ids: dict[str, str] = {}
        expected: set[tuple[str, str, str | None]] = set()

        def create(n: int) -> Any:
            folder = "abc"[n % 3]
            path = f"/{folder}/f{n:03}.txt"
            expected.add(("CREATED", path, None))

            async def step() -> None:
                ids[path] = await stack.create(
                    account, path.rsplit("/", 1)[1], parent=folders[folder], content=path
                )

            return step

        def rename(path: str) -> Any:
            new = path.replace(".txt", "-renamed.txt")
            expected.add(("UPDATED", path, new))

            async def step() -> None:
                await stack.update(account, ids[path], name=new.rsplit("/", 1)[1])
                ids[new] = ids[path]

            return step

        def delete(path: str) -> Any:
            expected.add(("DELETED", path, None))
            return lambda: stack.delete(account, ids[path])

        names = [f"/{'abc'[n % 3]}/f{n:03}.txt" for n in range(FILES)]
        await run_phase(stack, server, rng, expected, [create(n) for n in range(FILES)])
        renamed = names[:RENAMES]
        await run_phase(stack, server, rng, expected, [rename(p) for p in renamed])
        doomed = [p.replace(".txt", "-renamed.txt") for p in renamed[: DELETES // 2]]
        doomed += names[RENAMES : RENAMES + DELETES // 2]
        await run_phase(stack, server, rng, expected, [delete(p) for p in doomed])
        assert server.kills >= 6, server.kills

        got = {(e["eventType"], e["path"], e.get("newPath")) for e in receiver.events()}
        assert got == expected, "every change arrives, and nothing that did not happen"
        assert len(expected) == FILES + RENAMES + DELETES
        by_event: dict[tuple[str, str, str | None], set[str]] = {}
        for item in receiver.received:
            body = item.json()
            for e in body["message"]["events"]:
                by_event.setdefault((e["eventType"], e["path"], e.get("newPath")), set()).add(
                    body["id"]
                )
        assert all(len(ids) == 1 for ids in by_event.values()), (
            "a duplicate delivery carries the same notification id"
        )

        assert await eventually(lambda: all_delivered(stack, instance["id"]), timeout=30), (
            "no notification is left undelivered"
        )
        # After all the kills, one channel is live: renewed rows never left two behind.
        assert [c["state"] for c in await stack.channels()].count("live") == 1
