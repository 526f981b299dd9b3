"""Google Drive end to end: relaybox against the Drive sandbox, events at a real callback.

Push channels, polling, renewal, forged tokens, token refresh and revoked grants, as a
user of relaybox sees them: in the events that arrive, the instance's answer and the
channels the sandbox holds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from relaybox.store import db, tables
from tests.support.gdrive import DriveStack, running_drive_stack
from tests.support.servers import CallbackReceiver, eventually, serving
from tests.support.stack import AUTH

POLLING = {"event.vendor.type": "polling", "event.poller.refresh_interval": "0.005"}  # 0.3 s
FAST = {"min_poll_interval": 0.2}


async def until(condition: Callable[[], Awaitable[bool]], timeout: float = 20.0) -> None:
    await eventually(condition, timeout=timeout, interval=0.05)


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


async def rename_folder(stack: DriveStack, account: str, ids: dict[str, str]) -> None:
    await stack.update(account, ids["reports"], name="Reports-2026")


async def edit_inside(stack: DriveStack, account: str, ids: dict[str, str]) -> None:
    await stack.update(account, ids["q1"], content="one, final")


async def twins(stack: DriveStack, account: str, ids: dict[str, str]) -> None:
    # Drive lets two items share a name in one folder; each stays an object of its own.
    ids["q1b"] = await stack.create(account, "q1.txt", parent=ids["reports"], content="b")
    ids["photos"] = await stack.create(account, "Photos", folder=True)
    ids["photos2"] = await stack.create(account, "Photos", folder=True)
    await stack.create(account, "a.jpg", parent=ids["photos"], content="a")
    ids["b"] = await stack.create(account, "b.jpg", parent=ids["photos2"], content="b")


async def one_twin_goes(stack: DriveStack, account: str, ids: dict[str, str]) -> None:
    await stack.update(account, ids["photos"], trashed=True)
    await stack.update(account, ids["q1"], content="one, after its twin came")


async def the_other_twin_stays(stack: DriveStack, account: str, ids: dict[str, str]) -> None:
    await stack.update(account, ids["b"], content="b, revised")


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
    # Drive reports the folder alone; its content moves with it in the index.
    (rename_folder, [("UPDATED", "folders", "/Reports", "/Reports-2026")]),
    (edit_inside, [("UPDATED", "files", "/Reports-2026/q1.txt", None)]),
    (
        twins,
        [
            ("CREATED", "files", "/Photos/a.jpg", None),
            ("CREATED", "files", "/Photos/b.jpg", None),
            ("CREATED", "files", "/Reports-2026/q1.txt", None),
            ("CREATED", "folders", "/Photos", None),
            ("CREATED", "folders", "/Photos", None),
        ],
    ),
    (
        one_twin_goes,
        [
            ("DELETED", "folders", "/Photos", None),
            ("UPDATED", "files", "/Reports-2026/q1.txt", None),
        ],
    ),
    (the_other_twin_stays, [("UPDATED", "files", "/Photos/b.jpg", None)]),
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
            # A delivery's raw is the channel notification that asked for its pass, or the
            # changes read, for the one pass a new channel asks for itself.
            raws = [item.json()["message"]["raw"] for item in stack.receiver.received]
            notified = [raw for raw in raws if "channelId" in raw]
            assert notified and all(raw["resourceState"] == "change" for raw in notified)
            assert all("token" not in str(raw).lower() for raw in notified)  # the secret
            assert all("entries" in raw for raw in raws if raw not in notified)
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


async def instance_answer(stack: DriveStack, instance_id: int) -> dict[str, Any]:
    answer = await stack.http.get(f"{stack.api}/instances/{instance_id}", headers=AUTH)
    assert answer.status_code == 200, answer.text
    return dict(answer.json())


def paths(receiver: CallbackReceiver) -> list[str]:
    return sorted(e["path"] for e in receiver.events())


async def test_a_channel_about_to_end_is_renewed_and_no_change_is_missed(
    tmp_path: Path, database_url: str
) -> None:
    lifetime = {"googledrive_channel_seconds": 600, "googledrive_channel_renew_seconds": 120}
    async with running_drive_stack(tmp_path, database_url, **lifetime) as stack:
        account = await stack.new_account("renew@example.com")
        await stack.connect(account)
        await until(lambda: _has_channel(stack, 1))
        [first] = await active_channels(stack)
        await stack.create(account, "a.txt")
        await stack.receiver.wait_for(has_events(1))

        # 100 s of the channel left, less than the 120 s renewal margin: a new channel is
        # made and the old one stopped, while a change is made at the same moment.
        await stack.advance(500)
        await stack.create(account, "b.txt")

        async def renewed() -> bool:
            states = {c["id"]: c["state"] for c in await stack.channels()}
            live = [i for i, state in states.items() if state == "live"]
            return states[first["id"]] == "stopped" and len(live) == 1

        await until(renewed)
        await stack.create(account, "c.txt")
        await stack.receiver.wait_for(has_events(3))
        # Past the first channel's end: the new one carries the changes on its own.
        await stack.advance(200)
        await stack.create(account, "d.txt")
        await stack.receiver.wait_for(has_events(4))
        assert paths(stack.receiver) == ["/a.txt", "/b.txt", "/c.txt", "/d.txt"]
        [second] = await active_channels(stack)
        assert second["id"] != first["id"]
        assert second["message_number"] >= 2  # its sync, then a change that it carried
        assert int(second["expiration"]) > int(first["expiration"])


async def test_a_forged_channel_token_gets_403_and_stores_nothing(
    tmp_path: Path, database_url: str
) -> None:
    async with running_drive_stack(tmp_path, database_url) as stack:
        account = await stack.new_account("forged@example.com")
        instance = await stack.connect(account)
        await until(lambda: _has_channel(stack, 1))
        [channel] = await active_channels(stack)
        before = await stored_state(stack, instance["id"])
        url = f"{stack.api}/events/googledrive"
        headers = {
            "X-Goog-Channel-ID": channel["id"],
            "X-Goog-Resource-State": "change",
            "X-Goog-Message-Number": "7",
        }
        for token in ("forged", "", "x" * 600):
            answer = await stack.http.post(url, headers={**headers, "X-Goog-Channel-Token": token})
            assert answer.status_code == 403, answer.text
            assert "token" in answer.json()["message"].lower()
        unknown = {**headers, "X-Goog-Channel-ID": "not-a-channel", "X-Goog-Channel-Token": "t"}
        assert (await stack.http.post(url, headers=unknown)).status_code == 403
        missing = await stack.http.post(url, headers={"X-Goog-Channel-Token": "t"})
        assert missing.status_code == 400
        assert await stored_state(stack, instance["id"]) == before
        # The genuine channel still works.
        await stack.create(account, "real.txt")
        await stack.receiver.wait_for(has_events(1))
        assert paths(stack.receiver) == ["/real.txt"]


async def stored_state(stack: DriveStack, instance_id: int) -> tuple[int, int]:
    """(inbox rows, pass requests of the instance) as stored."""
    engine = db.create_engine(stack.settings.resolved_database_url)
    try:
        async with engine.connect() as connection:
            inbox = (await connection.execute(select(func.count(tables.InboxItem.id)))).scalar()
            requested = (
                await connection.execute(
                    select(tables.Instance.sync_requested).where(tables.Instance.id == instance_id)
                )
            ).scalar()
    finally:
        await engine.dispose()
    return int(inbox or 0), int(requested or 0)


async def test_an_expired_access_token_is_refreshed(tmp_path: Path, database_url: str) -> None:
    async with running_drive_stack(tmp_path, database_url) as stack:
        account = await stack.new_account("expired@example.com")
        instance = await stack.connect(account)
        await until(lambda: _has_channel(stack, 1))
        refreshes = len(stack.sandbox_log.of("/token"))
        await stack.control("POST", "/faults", json={"status": "expire_tokens"})
        await stack.create(account, "after-expiry.txt")
        await stack.receiver.wait_for(has_events(1))
        assert paths(stack.receiver) == ["/after-expiry.txt"]
        assert [s for _, s in stack.sandbox_log.of("/token")[refreshes:]] == [200]
        assert (await instance_answer(stack, instance["id"]))["valid"] is True


async def test_a_revoked_grant_marks_the_instance_invalid(
    tmp_path: Path, database_url: str
) -> None:
    async with running_drive_stack(tmp_path, database_url, **FAST) as stack:
        account = await stack.new_account("revoked@example.com")
        instance = await stack.connect(account, **POLLING)
        await stack.control("POST", "/tokens/revoke", json={"permission_id": account})
        await stack.create(account, "unseen.txt")

        async def invalid() -> bool:
            return (await instance_answer(stack, instance["id"]))["valid"] is False

        await until(invalid)
        shown = await instance_answer(stack, instance["id"])
        assert "invalid_grant" in shown["statusMessage"]
        assert stack.receiver.events() == []


async def test_polling_or_deletion_stops_the_channel_and_longpoll_is_refused(
    tmp_path: Path, database_url: str
) -> None:
    async with running_drive_stack(tmp_path, database_url, **FAST) as stack:
        account = await stack.new_account("switch@example.com")
        instance = await stack.connect(account)
        await until(lambda: _has_channel(stack, 1))
        [first] = await active_channels(stack)
        url = f"{stack.api}/instances/{instance['id']}"

        async def configure(vendor_type: str) -> httpx.Response:
            body = {"configuration": {**POLLING, "event.vendor.type": vendor_type}}
            return await stack.http.patch(url, json=body, headers=AUTH)

        refused = await configure("longpoll")
        assert refused.status_code == 400
        assert "longpoll" in refused.json()["message"]
        assert (await configure("polling")).status_code == 200
        await until(lambda: _has_channel(stack, 0))
        states = {c["id"]: c["state"] for c in await stack.channels()}
        assert states[first["id"]] == "stopped"
        # Polling still delivers.
        await stack.create(account, "polled.txt")
        await stack.receiver.wait_for(has_events(1))

        assert (await configure("webhooks")).status_code == 200
        await until(lambda: _has_channel(stack, 1))
        await stack.create(account, "pushed.txt")
        await stack.receiver.wait_for(has_events(2))
        assert paths(stack.receiver) == ["/polled.txt", "/pushed.txt"]

        # An hour later the stored access token has ended: delete refreshes it to stop
        # the channel and revoke the grant.
        await stack.advance(3700)
        assert (await stack.http.delete(url, headers=AUTH)).status_code == 200
        assert await active_channels(stack) == []
        assert {c["state"] for c in await stack.channels()} == {"stopped"}
