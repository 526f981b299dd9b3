"""Kill -9 at random moments loses nothing: relaybox runs as a real process and is SIGKILLed
again and again while it fetches changes and while it delivers them."""

from __future__ import annotations

import asyncio
import random
import signal
from collections import defaultdict
from pathlib import Path
from typing import Any

from tests.support.processes import all_delivered, relaybox_process, run_phase
from tests.support.servers import CallbackReceiver, eventually
from tests.support.stack import AUTH

FILES = 160
RENAMES = 80
DELETES = 80  # 320 changes in all


async def test_sigterm_finishes_the_delivery_in_flight(tmp_path: Path, database_url: str) -> None:
    receiver = CallbackReceiver(delay=1.5)
    async with relaybox_process(tmp_path, database_url, receiver, webhook_delay=0.05) as (
        server,
        stack,
    ):
        account = await stack.new_account("term@example.com")
        instance = await stack.connect(account)
        await stack.upload(account, "/a.txt", b"a")
        for _ in range(200):
            if receiver.in_flight:
                break
            await asyncio.sleep(0.02)
        assert receiver.in_flight == 1
        assert server.process is not None
        server.process.send_signal(signal.SIGTERM)
        # uvicorn re-raises the signal after its graceful shutdown
        assert await asyncio.to_thread(server.process.wait, 30) in (0, -signal.SIGTERM)
        assert receiver.answered and receiver.answered[0][1] == 200
        await server.start()
        listed = (
            await stack.http.get(f"{stack.api}/instances/{instance['id']}/deliveries", headers=AUTH)
        ).json()
        assert [d["status"] for d in listed] == ["delivered"]
        assert len(listed[0]["attempts"]) == 1
        await asyncio.sleep(1)
        assert len(receiver.received) == 1, "a finished delivery is not sent again"


async def test_sigkill_at_random_moments_loses_nothing(tmp_path: Path, database_url: str) -> None:
    rng = random.Random(20261130)
    receiver = CallbackReceiver(delay=0.05)
    receiver.statuses = [rng.choice([200, 200, 200, 500]) for _ in range(200)]
    async with relaybox_process(tmp_path, database_url, receiver, webhook_delay=0.1) as (
        server,
        stack,
    ):
        account = await stack.new_account("chaos@example.com")
        for folder in ("/a", "/b", "/c", "/d"):
            await stack.folder(account, folder)
        await stack.connect(account)

        names = [f"/{'abcd'[n % 4]}/f{n:03}.txt" for n in range(FILES)]
        expected: set[tuple[str, str, str | None]] = set()

        def create(path: str) -> Any:
            expected.add(("CREATED", path, None))
            return lambda: stack.upload(account, path, path.encode())

        def rename(path: str) -> Any:
            new = path.replace(".txt", "-renamed.txt")
            expected.add(("UPDATED", path, new))
            return lambda: stack.move(account, path, new)

        def delete(path: str) -> Any:
            expected.add(("DELETED", path, None))
            return lambda: stack.remove(account, path)

        await run_phase(stack, server, rng, expected, [create(p) for p in names])
        renamed = names[:RENAMES]
        await run_phase(stack, server, rng, expected, [rename(p) for p in renamed])
        doomed = [p.replace(".txt", "-renamed.txt") for p in renamed[: DELETES // 2]]
        doomed += names[RENAMES : RENAMES + DELETES // 2]
        await run_phase(stack, server, rng, expected, [delete(p) for p in doomed])
        assert server.kills >= 6, server.kills

        events = receiver.events()
        got = {(e["eventType"], e["path"], e.get("newPath")) for e in events}
        assert got == expected, "every change arrives, and nothing that did not happen"
        assert len(expected) == FILES + RENAMES + DELETES

        ids_per_event: dict[tuple[str, str, str | None], set[str]] = defaultdict(set)
        object_ids: dict[str, set[str]] = defaultdict(set)
        for item in receiver.received:
            body = item.json()
            for e in body["message"]["events"]:
                ids_per_event[(e["eventType"], e["path"], e.get("newPath"))].add(body["id"])
                object_ids[e["path"].replace("-renamed", "")].add(e["objectId"])
        assert all(len(ids) == 1 for ids in ids_per_event.values()), (
            "a duplicate delivery carries the same notification id"
        )
        assert all(len(ids) == 1 for ids in object_ids.values())

        instances = (await stack.http.get(f"{stack.api}/instances", headers=AUTH)).json()
        assert await eventually(lambda: all_delivered(stack, instances[0]["id"]), timeout=10), (
            "no notification is left undelivered"
        )
