"""Google Drive end to end: relaybox against the Drive sandbox, events at a real callback.

Push channels, polling, renewal, forged tokens, token refresh and revoked grants, as a
user of relaybox sees them: in the events that arrive, the instance's answer and the
channels the sandbox holds.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tests.support.gdrive import DriveStack, running_drive_stack
from tests.support.servers import CallbackReceiver, serving

POLLING = {"event.vendor.type": "polling", "event.poller.refresh_interval": "0.005"}  # 0.3 s
FAST = {"min_poll_interval": 0.2}


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    """Wait for `condition`, checking it every 50 ms (the sandbox has no event to wait on)."""

    async def loop() -> None:
        while not await condition():
            await asyncio.sleep(0.05)

    await asyncio.wait_for(loop(), timeout)


async def active_channels(stack: DriveStack) -> list[dict[str, Any]]:
    return [c for c in await stack.channels() if c["state"] == "live"]


def summary(events: list[dict[str, Any]]) -> list[tuple[str, str, str, str | None]]:
    return sorted((e["eventType"], e["objectType"], e["path"], e.get("newPath")) for e in events)


Step = Callable[[DriveStack, str, dict[str, str]], Awaitable[None]]


async def create_some(stack: DriveStack, account: str, ids: dict[str, str]) -> None:
    ids["reports"] = await stack.create(account, "Reports", folder=True)
    ids["archive"] = await stack.create(account, "Archive", folder=True)
    ids["q1"] = await stack.create(account, "q1.txt", parent=ids["reports"], content="one")
    ids["q2"] = await stack.create(account, "q2.txt", parent=ids["reports"], content="two")
    ids["notes"] = await stack.create(account, "notes.txt", content="n")


async def edit_and_rename(stack: DriveStack, account: str, ids: dict[str, str]) -> None:
    await stack.update(account, ids["q1"], content="one, revised")
    await stack.update(account, ids["q2"], name="q2-final.txt")


async def move(stack: DriveStack, account: str, ids: dict[str, str]) -> None:
    await stack.update(account, ids["q2"], parent=ids["archive"])


async def trash_and_delete(stack: DriveStack, account: str, ids: dict[str, str]) -> None:
    await stack.update(account, ids["notes"], trashed=True)
    await stack.delete(account, ids["archive"])  # with q2-final.txt inside


STEPS: list[tuple[Step, list[tuple[str, str, str, str | None]]]] = [
    (
        create_some,
        [
            ("CREATED", "files", "/Reports/q1.txt", None),
            ("CREATED", "files", "/Reports/q2.txt", None),
            ("CREATED", "files", "/notes.txt", None),
            ("CREATED", "folders", "/Archive", None),
            ("CREATED", "folders", "/Reports", None),
        ],
    ),
    (
        edit_and_rename,
        [
            ("UPDATED", "files", "/Reports/q1.txt", None),
            ("UPDATED", "files", "/Reports/q2.txt", "/Reports/q2-final.txt"),
        ],
    ),
    (move, [("UPDATED", "files", "/Reports/q2-final.txt", "/Archive/q2-final.txt")]),
    (
        trash_and_delete,
        [("DELETED", "files", "/notes.txt", None), ("DELETED", "folders", "/Archive", None)],
    ),
]


async def test_push_channels_and_polling_deliver_the_same_events(
    tmp_path: Path, database_url: str
) -> None:
    async with running_drive_stack(tmp_path, database_url, **FAST) as stack:
        account = await stack.new_account("both@example.com")
        polled = CallbackReceiver()
        async with serving(polled.app()) as polled_url:
            pushed = await stack.connect(account, "by push")
            polling = await stack.connect(
                account,
                "by polling",
                **{**POLLING, "event.notification.callback.url": f"{polled_url}/events"},
            )
            await until(lambda: _has_channel(stack, 1))
            ids: dict[str, str] = {}
            expected: list[tuple[str, str, str, str | None]] = []
            for step, events in STEPS:
                await step(stack, account, ids)
                expected = sorted(expected + events)
                for receiver in (stack.receiver, polled):
                    await receiver.wait_for(has_events(len(expected)), timeout=20)
                assert summary(stack.receiver.events()) == expected
                assert summary(polled.events()) == expected
            for item in stack.receiver.received:
                raw = item.json()["message"]["raw"]
                assert raw["resourceState"] == "change"  # the channel's notification
                assert "token" not in str(raw).lower()  # the channel's secret stays here
            events = stack.receiver.events() + polled.events()
            assert {e["elementKey"] for e in events} == {"googledrive"}
            assert {i.json()["message"]["instanceId"] for i in stack.receiver.received} == {
                pushed["id"]
            }
            assert {i.json()["message"]["instanceId"] for i in polled.received} == {polling["id"]}
            # The polling instance has no channel; the push instance has one.
            assert len(await active_channels(stack)) == 1


def has_events(count: int) -> Callable[[CallbackReceiver], bool]:
    return lambda receiver: len(receiver.events()) >= count


async def _has_channel(stack: DriveStack, count: int) -> bool:
    return len(await active_channels(stack)) == count
