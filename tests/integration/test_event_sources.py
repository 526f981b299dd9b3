"""Webhooks, polling and longpoll: three event sources, one pass path, the same events.

Real servers on free ports (sandbox, relaybox, callback receivers), on SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import select

from relaybox.app import create_app
from relaybox.sandbox.app import create_app as create_sandbox
from relaybox.store import tables
from relaybox.store.db import create_engine, session_factory, transaction
from tests.support.servers import CallbackReceiver, free_port, serving
from tests.support.stack import (
    APP_KEY,
    APP_SECRET,
    AUTH,
    Stack,
    relaybox_settings,
    running_stack,
)

POLLING = {"event.vendor.type": "polling", "event.poller.refresh_interval": "0.005"}  # 0.3 s
LONGPOLL = {"event.vendor.type": "longpoll"}
FAST = {"min_poll_interval": 0.2, "longpoll_timeout": 30}


def summary(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    return [
        (e["eventType"], e["objectType"], e["objectId"], e["path"], e.get("newPath"))
        for e in events
    ]


async def wait_all(receivers: list[CallbackReceiver], count: int) -> None:
    for receiver in receivers:
        await receiver.wait_for(lambda r: len(r.events()) >= count)


def shrink_longpolls(stack: Stack) -> None:
    """A held longpoll answers `changes: false` after 0.6 s instead of 30 s, so the
    servers stop at once at the end of a test."""
    stack.sandbox_app.state.sandbox.longpoll_time_scale = 0.02


async def without_webhooks(stack: Stack) -> None:
    """Register the app again with no webhook URI: Dropbox cannot reach this server."""
    await stack.control("POST", "/apps", json={"app_key": APP_KEY, "app_secret": APP_SECRET})


async def instance_answer(stack: Stack, instance_id: int) -> dict[str, Any]:
    answer = await stack.http.get(f"{stack.api}/instances/{instance_id}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


async def test_webhooks_polling_and_longpoll_deliver_the_same_events(
    tmp_path: Path, database_url: str
) -> None:
    async with running_stack(tmp_path, database_url, **FAST) as stack:
        shrink_longpolls(stack)
        polled, held = CallbackReceiver(), CallbackReceiver()
        async with serving(polled.app()) as polled_url, serving(held.app()) as held_url:
            account = await stack.new_account("ada@example.com")
            await stack.upload(account, "/existing.txt", b"already there")
            hooked = await stack.connect(account, "by webhooks")
            polling = await stack.connect(
                account,
                "by polling",
                **POLLING,
                **{"event.notification.callback.url": f"{polled_url}/events"},
            )
            longpoll = await stack.connect(
                account,
                "by longpoll",
                **LONGPOLL,
                **{"event.notification.callback.url": f"{held_url}/events"},
            )
            receivers = [stack.receiver, polled, held]
            script: list[tuple[Callable[[], Awaitable[None]], int]] = [
                (lambda: stack.upload(account, "/Reports/q1.txt", b"draft"), 2),
                (lambda: stack.upload(account, "/Reports/q1.txt", b"final"), 3),
                (lambda: stack.move(account, "/Reports/q1.txt", "/Reports/q1-final.txt"), 4),
                (lambda: stack.folder(account, "/Reports/Archive"), 5),
                (
                    lambda: stack.move(
                        account, "/Reports/q1-final.txt", "/Reports/Archive/q1-final.txt"
                    ),
                    6,
                ),
                (lambda: stack.upload(account, "/Reports/Archive/notes.txt", b"n"), 7),
                (lambda: stack.remove(account, "/Reports"), 8),
            ]
            for change, total in script:
                await change()
                await wait_all(receivers, total)  # one step at a time: nothing coalesces

            by_webhooks = summary(stack.receiver.events())
            assert [e[0:2] + e[3:] for e in by_webhooks] == [
                ("CREATED", "folders", "/Reports", None),
                ("CREATED", "files", "/Reports/q1.txt", None),
                ("UPDATED", "files", "/Reports/q1.txt", None),
                ("UPDATED", "files", "/Reports/q1.txt", "/Reports/q1-final.txt"),
                ("CREATED", "folders", "/Reports/Archive", None),
                ("UPDATED", "files", "/Reports/q1-final.txt", "/Reports/Archive/q1-final.txt"),
                ("CREATED", "files", "/Reports/Archive/notes.txt", None),
                ("DELETED", "folders", "/Reports", None),
            ]
            assert all(e[2].startswith("id:") for e in by_webhooks)
            assert summary(polled.events()) == by_webhooks
            assert summary(held.events()) == by_webhooks

            # message.raw is the provider's payload (SPEC 9): Dropbox's list_folder/continue
            # answer for a polled or longpolled pass, the webhook for a webhook-triggered one.
            for item in polled.received + held.received:
                assert {"entries", "cursor"} <= set(item.json()["message"]["raw"])
            assert all(
                item.json()["message"]["raw"]["list_folder"]["accounts"] == [account]
                for item in stack.receiver.received
            )
            assert all(len(item.json()["message"]["events"]) <= 10 for item in polled.received)

            shown = await instance_answer(stack, polling["id"])
            assert shown["eventSource"] == "polling"
            assert shown["lastPollDate"] is not None and shown["nextPollDate"] is not None
            assert (await instance_answer(stack, longpoll["id"]))["eventSource"] == "longpoll"
            hooked_answer = await instance_answer(stack, hooked["id"])
            assert hooked_answer["eventSource"] == "webhooks"
            assert "nextPollDate" not in hooked_answer


async def test_longpoll_event_within_two_seconds_without_webhooks(
    tmp_path: Path, database_url: str
) -> None:
    async with running_stack(tmp_path, database_url, **FAST) as stack:
        shrink_longpolls(stack)
        await without_webhooks(stack)
        account = await stack.new_account("lin@example.com")
        await stack.connect(account, "held", **LONGPOLL)
        await stack.upload(account, "/warm-up.txt", b"1")
        await stack.receiver.wait_for(lambda r: len(r.events()) >= 1)

        changed = time.monotonic()
        await stack.upload(account, "/now.txt", b"2")
        await stack.receiver.wait_for(lambda r: len(r.events()) >= 2, timeout=10)
        assert time.monotonic() - changed < 2.0
        assert [e["path"] for e in stack.receiver.events()] == ["/warm-up.txt", "/now.txt"]
        log = await stack.control("GET", "/webhooks/log")
        assert not [e for e in log.json()["entries"] if e["kind"] == "notification"]


async def test_switching_sources_keeps_the_cursor(tmp_path: Path, database_url: str) -> None:
    async with running_stack(tmp_path, database_url, **FAST) as stack:
        shrink_longpolls(stack)
        account = await stack.new_account("sam@example.com")
        instance = await stack.connect(account, "switched")
        url = f"{stack.api}/instances/{instance['id']}"
        sources: list[dict[str, Any]] = [POLLING, LONGPOLL, {"event.vendor.type": "webhooks"}]
        await stack.upload(account, "/0.txt", b"0")
        await stack.receiver.wait_for(lambda r: len(r.events()) >= 1)
        for number, source in enumerate(sources, start=1):
            # A change made just before the switch is fetched by one source or the other.
            await stack.upload(account, f"/{number}.txt", b"x")
            patched = await stack.http.patch(url, json={"configuration": source}, headers=AUTH)
            assert patched.status_code == 200, patched.text
            assert patched.json()["eventSource"] == source["event.vendor.type"]
            assert ("nextPollDate" in patched.json()) == (source is POLLING)
            await stack.receiver.wait_for(lambda r, n=number: len(r.events()) >= n + 1)
        await stack.upload(account, "/4.txt", b"4")
        await stack.receiver.wait_for(lambda r: len(r.events()) >= 5)
        await asyncio.sleep(0.5)  # room for a duplicate to show up
        assert [(e["eventType"], e["path"]) for e in stack.receiver.events()] == [
            ("CREATED", f"/{n}.txt") for n in range(5)
        ]


async def next_poll_at(database_url: str, instance_id: int) -> datetime | None:
    engine = create_engine(database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            return await session.scalar(
                select(tables.Instance.next_poll_at).where(tables.Instance.id == instance_id)
            )
    finally:
        await engine.dispose()


@contextlib.asynccontextmanager
async def relaybox_server(stack: Stack, port: int) -> AsyncIterator[None]:
    async with serving(create_app(stack.settings), port=port):
        yield


async def test_restart_keeps_the_polling_schedule_and_every_change(
    tmp_path: Path, database_url: str
) -> None:
    receiver = CallbackReceiver()
    port = free_port()
    interval = timedelta(seconds=3)
    async with (
        serving(create_sandbox(webhook_delay=0.05)) as sandbox_url,
        serving(receiver.app()) as receiver_url,
        httpx.AsyncClient(timeout=30) as http,
    ):
        url = f"http://127.0.0.1:{port}"
        settings = relaybox_settings(tmp_path, database_url, sandbox_url, url, min_poll_interval=1)
        stack = Stack(url, sandbox_url, receiver, f"{receiver_url}/events", http, settings, None)
        await without_webhooks(stack)
        account = await stack.new_account("kim@example.com")
        config = {"event.vendor.type": "polling", "event.poller.refresh_interval": "0.05"}
        async with relaybox_server(stack, port):
            instance = await stack.connect(account, "polled", **config)
            await stack.upload(account, "/before.txt", b"1")
            await receiver.wait_for(lambda r: len(r.events()) >= 1)
        scheduled = await next_poll_at(database_url, instance["id"])
        assert scheduled is not None

        # While relaybox is down: changes, and the scheduled poll time passes.
        await stack.upload(account, "/while-down.txt", b"a")
        await stack.remove(account, "/before.txt")
        await asyncio.sleep(max(0.0, (scheduled - datetime.now(scheduled.tzinfo)).total_seconds()))
        assert await next_poll_at(database_url, instance["id"]) == scheduled

        async with relaybox_server(stack, port):
            await receiver.wait_for(lambda r: len(r.events()) >= 3)
            # The missed poll ran from the stored schedule, which kept its phase: a fresh
            # schedule would start at an arbitrary point of the interval.
            following = await next_poll_at(database_url, instance["id"])
            assert following is not None and following > scheduled
            assert (following - scheduled) % interval == timedelta(0)
            shown = await instance_answer(stack, instance["id"])
            assert shown["eventSource"] == "polling" and shown["lastPollDate"] is not None
        assert [(e["eventType"], e["path"]) for e in receiver.events()] == [
            ("CREATED", "/before.txt"),
            ("CREATED", "/while-down.txt"),
            ("DELETED", "/before.txt"),
        ]


async def test_longpoll_survives_backoff_reset_and_outage(
    tmp_path: Path, database_url: str
) -> None:
    async with running_stack(tmp_path, database_url, **FAST) as stack:
        shrink_longpolls(stack)
        await without_webhooks(stack)
        account = await stack.new_account("max@example.com")
        await stack.connect(account, "held", **LONGPOLL)
        route = "files/list_folder/longpoll"
        faults: list[dict[str, Any]] = [
            {"route": route, "status": "backoff", "count": 2, "retry_after": 1},
            {"route": route, "status": "reset", "count": 1},
            {"route": route, "status": 503, "count": 1},
        ]
        for number, fault in enumerate(faults):
            await stack.control("POST", "/faults", json=fault)
            await stack.upload(account, f"/{number}.txt", b"x")
            await stack.receiver.wait_for(lambda r, n=number: len(r.events()) >= n + 1)
        await asyncio.sleep(0.5)  # room for a duplicate to show up
        assert [(e["eventType"], e["path"]) for e in stack.receiver.events()] == [
            ("CREATED", f"/{n}.txt") for n in range(len(faults))
        ]
