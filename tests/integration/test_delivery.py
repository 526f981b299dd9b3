"""Delivery that never loses an event: deactivation and replay, Retry-After, ordering,
fairness between instances, and callback URLs that must not be reached (SSRF)."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaybox.store import tables
from relaybox.store.db import create_engine, session_factory, transaction
from tests.support.dns import fake_dns
from tests.support.servers import CallbackReceiver, eventually, free_port, serving
from tests.support.stack import AUTH, Stack, running_stack


async def changes(stack: Stack, account: str, names: list[str], gap: float = 0.3) -> None:
    for name in names:
        await stack.upload(account, f"/{name}", name.encode())
        await asyncio.sleep(gap)


def paths(receiver: CallbackReceiver) -> list[str]:
    return [e["path"] for e in receiver.events()]


async def test_410_deactivates_and_the_queue_drains_in_order_after_reactivation(
    tmp_path: Path, database_url: str
) -> None:
    async with running_stack(tmp_path, database_url) as stack:
        stack.receiver.statuses = [410]
        account = await stack.new_account("gone@example.com")
        instance = await stack.connect(account)
        await stack.upload(account, "/a.txt", b"a")
        await stack.receiver.wait_for(lambda r: len(r.received) == 1)
        await changes(stack, account, ["b.txt", "c.txt", "d.txt"])

        async def queued() -> bool:
            # Every change is in a pending notification. (Count paths, not notifications:
            # on a busy machine uploads coalesce into fewer, larger ones.)
            answer = await stack.http.get(
                f"{stack.api}/instances/{instance['id']}/events", headers=AUTH
            )
            entries = answer.json()
            logged = {event["path"] for entry in entries for event in entry["notifiedData"]}
            return logged == {"/a.txt", "/b.txt", "/c.txt", "/d.txt"} and all(
                entry["deliveryStatus"] == "pending" for entry in entries
            )

        await eventually(queued)
        await asyncio.sleep(0.5)
        assert len(stack.receiver.received) == 1, "nothing is attempted while deactivated"

        stack.receiver.delay = 0.05
        answer = await stack.http.put(
            f"{stack.api}/instances/{instance['id']}/events/subscription",
            json={"active": True},
            headers=AUTH,
        )
        assert answer.status_code == 200
        await stack.receiver.wait_for(lambda r: paths(r)[-1:] == ["/d.txt"])
        assert paths(stack.receiver) == ["/a.txt", "/a.txt", "/b.txt", "/c.txt", "/d.txt"]
        assert stack.receiver.max_in_flight == 1

        async def all_delivered() -> list[dict[str, Any]] | None:
            # The receiver holds the last one before relaybox has recorded its answer.
            listed = await stack.deliveries(instance["id"])
            return listed if {d["status"] for d in listed} == {"delivered"} else None

        listed = await eventually(all_delivered)
        gone = next(d for d in listed if len(d["attempts"]) == 2)
        assert [a["statusCode"] for a in gone["attempts"]] == [410, 200]


async def test_exhausted_retries_deactivate_and_redeliver_recovers(
    tmp_path: Path, database_url: str
) -> None:
    async with running_stack(tmp_path, database_url, retry_schedule="0.1,0.1") as stack:
        stack.receiver.statuses = [500, 500, 500]
        account = await stack.new_account("tired@example.com")
        instance = await stack.connect(account)
        await stack.upload(account, "/first.txt", b"1")

        async def given_up() -> list[dict[str, Any]] | None:
            listed = await stack.deliveries(instance["id"])
            return listed if listed and listed[0]["status"] == "failed" else None

        failed = (await eventually(given_up))[0]
        assert len(failed["attempts"]) == 3
        await stack.upload(account, "/second.txt", b"2")
        await eventually(lambda: _count(stack, instance["id"], 2))
        await asyncio.sleep(0.3)
        assert len(stack.receiver.received) == 3

        base = f"{stack.api}/instances/{instance['id']}"
        reactivated = await stack.http.put(
            f"{base}/events/subscription", json={"active": True}, headers=AUTH
        )
        assert reactivated.status_code == 200
        await stack.receiver.wait_for(lambda r: paths(r)[-1:] == ["/second.txt"])
        bulk = await stack.http.post(
            f"{base}/deliveries/redeliver", params={"status": "failed"}, headers=AUTH
        )
        assert bulk.json() == {"redelivered": 1}
        await stack.receiver.wait_for(lambda r: paths(r)[-1:] == ["/first.txt"])
        ids = [item.headers["elements-webhook-id"] for item in stack.receiver.received]
        assert ids[-1] == failed["id"]

        async def recorded() -> bool:
            # The receiver holds the POST before relaybox has recorded its answer; until
            # then the notification is still in flight, and redelivering it changes nothing.
            listed = await stack.deliveries(instance["id"])
            return any(d["id"] == failed["id"] and d["status"] == "delivered" for d in listed)

        await eventually(recorded)
        one = await stack.http.post(f"{base}/deliveries/{failed['id']}/redeliver", headers=AUTH)
        assert one.status_code == 200
        await stack.receiver.wait_for(lambda r: len(r.received) == 6)
        assert stack.receiver.received[-1].body == stack.receiver.received[-2].body
        missing = await stack.http.post(f"{base}/deliveries/nope/redeliver", headers=AUTH)
        assert missing.status_code == 404


async def _count(stack: Stack, instance_id: int, count: int) -> bool:
    return len(await stack.deliveries(instance_id)) == count


async def test_retry_after_is_honoured_within_twice_the_schedule(
    tmp_path: Path, database_url: str
) -> None:
    async with running_stack(tmp_path, database_url, retry_schedule="100,100") as stack:
        stack.receiver.statuses = [429, 503]
        stack.receiver.headers = {"Retry-After": "150"}
        account = await stack.new_account("slowdown@example.com")
        instance = await stack.connect(account)
        await stack.upload(account, "/a.txt", b"a")

        async def attempted() -> dict[str, Any] | None:
            listed = await stack.deliveries(instance["id"])
            return listed[0] if listed and listed[0]["attempts"] else None

        delivery = await eventually(attempted)
        tried = datetime.fromisoformat(delivery["attempts"][0]["date"])
        next_at = datetime.fromisoformat(delivery["nextAttemptDate"])
        assert delivery["attempts"][0]["statusCode"] == 429
        assert 149 <= (next_at - tried).total_seconds() <= 152


async def test_ordered_instances_never_overlap_or_reorder(
    tmp_path: Path, database_url: str
) -> None:
    async with running_stack(tmp_path, database_url, retry_schedule="0.2,0.2,0.2") as stack:
        stack.receiver.statuses = [200, 500, 200, 500, 500, 200]
        stack.receiver.delay = 0.1
        account = await stack.new_account("fifo@example.com")
        await stack.connect(account, **{"event.notification.ordered": True})
        names = [f"{n}.txt" for n in range(6)]
        await changes(stack, account, names, gap=0.15)

        def all_delivered(receiver: CallbackReceiver) -> bool:
            # Uploads may coalesce into fewer notifications than changes (a busy machine
            # makes fewer, larger passes): wait for every path to be answered 200, not for
            # a count of notifications.
            paths_of = {
                item.headers["elements-webhook-id"]: [
                    e["path"] for e in item.json()["message"]["events"]
                ]
                for item in receiver.received
            }
            ok = {p for i, status in receiver.answered if status == 200 for p in paths_of[i]}
            return ok == {f"/{name}" for name in names}

        await stack.receiver.wait_for(all_delivered, timeout=30)
        assert stack.receiver.max_in_flight == 1
        delivered = [i for i, status in stack.receiver.answered if status == 200]
        assert len(delivered) == len(set(delivered)), "each notification succeeds once"
        order: list[str] = []
        for notification_id, _ in stack.receiver.answered:
            if not order or order[-1] != notification_id:
                assert notification_id not in order, "never goes back to an earlier one"
                order.append(notification_id)
        first_paths = []
        for item in stack.receiver.received:
            for event in item.json()["message"]["events"]:
                if event["path"] not in first_paths:
                    first_paths.append(event["path"])
        assert first_paths == [f"/{name}" for name in names]


async def test_a_slow_endpoint_does_not_delay_another_instance(
    tmp_path: Path, database_url: str
) -> None:
    slow = CallbackReceiver(delay=3.0)
    async with running_stack(tmp_path, database_url) as stack, serving(slow.app()) as slow_url:
        slow_account = await stack.new_account("slow@example.com")
        fast_account = await stack.new_account("fast@example.com")
        await stack.connect(
            slow_account, "slow", **{"event.notification.callback.url": f"{slow_url}/events"}
        )
        await stack.connect(fast_account, "fast")
        await changes(stack, slow_account, [f"s{n}.txt" for n in range(12)], gap=0.1)
        await asyncio.sleep(0.3)
        assert slow.in_flight >= 8
        started = asyncio.get_running_loop().time()
        await stack.upload(fast_account, "/quick.txt", b"q")
        await stack.receiver.wait_for(lambda r: paths(r) == ["/quick.txt"], timeout=2.5)
        assert asyncio.get_running_loop().time() - started < 2.5
        assert slow.max_in_flight <= 8, "RELAYBOX_MAX_IN_FLIGHT bounds one instance"


BLOCKED = [
    ("http://127.0.0.1/", "loopback"),
    ("http://10.0.0.1/", "private"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "loopback"),
    ("http://169.254.169.254/", "link-local"),
    ("http://localhost:8080/hook", "loopback"),
    ("http://100.64.0.1/", "CGNAT"),
    ("http://0.0.0.0/", "unspecified"),
]


async def _create(stack: Stack, callback_url: str) -> httpx.Response:
    """Ask for an instance with `callback_url`: the API's answer, whatever it is."""
    account = await stack.new_account("ssrf@example.com")
    code = await stack.authorize_in_browser(account)
    body = {
        "element": {"key": "dropbox"},
        "providerData": {"code": code},
        "name": "x",
        "configuration": {
            "oauth.api.key": "test-app-key",
            "oauth.api.secret": "test-app-secret",
            "oauth.callback.url": "https://app.example.com/auth",
            "event.notification.enabled": True,
            "event.notification.callback.url": callback_url,
        },
    }
    return await stack.http.post(f"{stack.api}/instances", json=body, headers=AUTH)


@pytest.mark.parametrize(("url", "reason"), BLOCKED)
async def test_private_callback_urls_are_refused_by_default(
    tmp_path: Path, url: str, reason: str
) -> None:
    database = f"sqlite+aiosqlite:///{tmp_path / 'ssrf.db'}"
    async with running_stack(tmp_path, database, allow_private_callbacks=False) as stack:
        answer = await _create(stack, url)
        assert answer.status_code == 400
        message = answer.json()["message"]
        assert "event.notification.callback.url" in message and reason in message
        # The class of address, never an internal address the host name resolved to.
        assert not any(address in message for address in ("127.0.0.1", "::1") if address not in url)


async def test_callback_host_that_rebinds_to_loopback_is_refused_at_connect_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    answers = fake_dns(monkeypatch, {"rebind.example": ["93.184.216.34"]})
    database = f"sqlite+aiosqlite:///{tmp_path / 'rebind.db'}"
    async with running_stack(
        tmp_path, database, allow_private_callbacks=False, retry_schedule="60"
    ) as stack:
        port = stack.callback_url.split(":")[2].split("/")[0]
        account = await stack.new_account("rebind@example.com")
        instance = await stack.connect(
            account, **{"event.notification.callback.url": f"http://rebind.example:{port}/events"}
        )
        answers["rebind.example"] = ["127.0.0.1"]
        await stack.upload(account, "/a.txt", b"a")

        async def refused() -> dict[str, Any] | None:
            listed = await stack.deliveries(instance["id"])
            return listed[0] if listed and listed[0]["attempts"] else None

        delivery = await eventually(refused)
        assert delivery["attempts"][0]["statusCode"] is None
        error = delivery["attempts"][0]["error"]
        assert "rebind.example" in error and "loopback" in error
        assert "127.0.0.1" not in error, "a tenant never learns the internal address"
        assert stack.receiver.received == []


async def test_a_connection_error_names_the_host_not_the_address_it_resolved_to(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, {"closed.example": ["127.0.0.1"]}, public=True)
    database = f"sqlite+aiosqlite:///{tmp_path / 'closed.db'}"
    async with running_stack(
        tmp_path, database, allow_private_callbacks=False, retry_schedule="60"
    ) as stack:
        port = free_port()  # nothing listens there
        account = await stack.new_account("closed@example.com")
        instance = await stack.connect(
            account, **{"event.notification.callback.url": f"http://closed.example:{port}/events"}
        )
        await stack.upload(account, "/a.txt", b"a")

        async def attempted() -> dict[str, Any] | None:
            listed = await stack.deliveries(instance["id"])
            return listed[0] if listed and listed[0]["attempts"] else None

        error = (await eventually(attempted))["attempts"][0]["error"]
        assert f"closed.example port {port}" in error and "refused" in error
        assert "127.0.0.1" not in error


async def test_internationalized_callback_hosts_are_sent_idna_encoded_or_refused_cleanly(
    tmp_path: Path, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_dns(monkeypatch, {"bücher.example": ["127.0.0.1"]}, public=True)
    async with running_stack(
        tmp_path, database_url, allow_private_callbacks=False, retry_schedule="60"
    ) as stack:
        port = stack.callback_url.split(":")[2].split("/")[0]
        refused = await _create(stack, f"http://☃.example:{port}/events")
        assert refused.status_code == 400
        assert "not a valid internationalized domain name" in refused.json()["message"]

        account = await stack.new_account("idn@example.com")
        instance = await stack.connect(
            account, **{"event.notification.callback.url": f"http://bücher.example:{port}/events"}
        )
        await stack.upload(account, "/a.txt", b"a")
        await stack.receiver.wait_for(lambda r: len(r.received) == 1)
        assert stack.receiver.received[0].headers["host"] == f"xn--bcher-kva.example:{port}"

        # One stored before such hosts were refused: a failed attempt that says why, then
        # the retry schedule (not a crash that leaves the notification to be claimed again).
        await _store_callback_url(stack, instance["id"], f"http://☃.example:{port}/events")
        await stack.upload(account, "/b.txt", b"b")

        async def attempted() -> dict[str, Any] | None:
            listed = await stack.deliveries(instance["id"])
            later = [d for d in listed if d["status"] != "delivered"]
            return later[0] if later and later[0]["attempts"] else None

        failed = await eventually(attempted)
        assert failed["status"] == "pending" and failed["nextAttemptDate"]
        [attempt] = failed["attempts"]
        assert attempt["statusCode"] is None
        assert "'☃.example' is not a valid internationalized domain name" in attempt["error"]


async def _store_callback_url(stack: Stack, instance_id: int, url: str) -> None:
    """Write a callback URL into an instance's stored configuration, past the API's checks."""
    engine = create_engine(stack.settings.resolved_database_url)
    try:
        async with transaction(session_factory(engine)) as session:
            row = await session.get_one(tables.Instance, instance_id)
            row.configuration = {**row.configuration, "event.notification.callback.url": url}
    finally:
        await engine.dispose()
