"""The console's overview, instance list and test events, in a real browser; a private
callback URL refused next to its field where private callbacks are not allowed.

Four instances in four states (healthy, retrying, paused, invalid): the overview that
opens after sign-in shows each one's health, its last event and its attempts of the day,
drawn as SVG; the list names each account by its display name and email. "Send a test
event" delivers a signed test notification to the callback and says how it went, and
says so truthfully when the callback is dead.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, expect
from standardwebhooks.webhooks import Webhook

from relaybox.runtime import Runtime
from relaybox.services.orgs import create_org
from tests.browser.test_console import (
    Pages,
    browser,  # noqa: F401  (fixture)
    sign_in,
)
from tests.support.dns import fake_dns
from tests.support.stack import APP_SECRET, AUTH, ORG_SECRET, USER_SECRET, Stack
from tests.support.stack import running_stack as stack_of

DEAD = "http://127.0.0.1:9/events"  # the discard port: nothing answers there
KEY = "sig-key-123"  # the signature key Stack.connect sets


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    # A failed delivery waits a minute for its retry: long enough to be seen retrying.
    url = f"sqlite+aiosqlite:///{tmp_path / 'relaybox.db'}"
    async with stack_of(tmp_path, url, retry_schedule="60") as running:
        yield running


async def api(stack: Stack, method: str, path: str, **kwargs: Any) -> Any:
    answer = await stack.http.request(method, f"{stack.api}{path}", headers=AUTH, **kwargs)
    assert answer.status_code == 200, answer.text
    return answer.json()


async def until(check: Any, timeout: float = 15.0) -> Any:
    async def loop() -> Any:
        while not (found := await check()):
            await asyncio.sleep(0.1)
        return found

    return await asyncio.wait_for(loop(), timeout)


async def test_overview_list_and_test_events(browser: Browser, stack: Stack) -> None:  # noqa: F811
    pages = Pages()
    made = await stack.control(
        "POST", "/accounts", json={"email": "ada@example.com", "display_name": "Ada Lovelace"}
    )
    ada = str(made.json()["account_id"])
    bo, cy, di = [await stack.new_account(f"{n}@example.com") for n in ("bo", "cy", "di")]
    healthy = await stack.connect(ada, "healthy one")
    paused = await stack.connect(bo, "paused one", **{"event.vendor.type": "polling"})
    invalid = await stack.connect(cy, "invalid one")
    retrying = await stack.connect(di, "retrying one", **{"event.notification.callback.url": DEAD})

    await stack.upload(ada, "/report.txt", b"x")
    await stack.receiver.wait_for(lambda r: any(e["path"] == "/report.txt" for e in r.events()))
    await api(
        stack, "PUT", f"/instances/{paused['id']}/events/subscription", json={"active": False}
    )
    await stack.control("POST", "/tokens/revoke", json={"account_id": cy})
    await stack.upload(cy, "/after-revoke.txt", b"x")
    await stack.upload(di, "/nobody-listens.txt", b"x")

    async def settled() -> bool:
        shown = await api(stack, "GET", f"/instances/{invalid['id']}")
        tried = await stack.deliveries(retrying["id"])
        healthy_ones = await stack.deliveries(healthy["id"])
        return (
            shown["valid"] is False
            and bool(tried and tried[0]["attempts"])
            and all(d["status"] == "delivered" for d in healthy_ones)
        )

    await until(settled)

    # Sign-in opens the overview.
    context = await browser.new_context()
    page = await context.new_page()
    await sign_in(page, stack)
    await expect(page).to_have_url(re.compile(r"/ui/overview$"))
    await expect(page.get_by_role("heading", name="Overview", exact=True)).to_be_visible()
    for item, health in (
        (healthy, "healthy"),
        (retrying, "retrying"),
        (paused, "paused"),
        (invalid, "invalid"),
    ):
        row = page.locator(f"#overview-table #instance-{item['id']}")
        await expect(row.locator(".health")).to_have_text(health)
        await expect(page.locator(f"#count-{health} strong")).to_have_text("1")
    ada_row = page.locator(f"#instance-{healthy['id']}")
    await expect(ada_row).to_contain_text("Ada Lovelace")
    await expect(ada_row.locator("td").nth(2)).to_contain_text("UTC")  # its last event
    await expect(ada_row.locator("td").nth(3)).to_have_text("1")  # delivered today
    await expect(ada_row.locator("svg.chart rect.delivered")).to_have_count(1)
    di_row = page.locator(f"#instance-{retrying['id']}")
    await expect(di_row.locator("td").nth(4)).to_have_text("1")  # one failed attempt
    await expect(di_row.locator("svg.chart rect.failed")).to_have_count(1)
    whole = page.locator("#chart-all")
    await expect(whole.locator("rect.delivered")).to_have_count(1)
    await expect(whole.locator("rect.failed")).to_have_count(1)
    await expect(whole.locator("title").first).to_contain_text("1 delivered, 1 failed")
    await pages.look(page, "30-overview")

    # The list names accounts by display name and email, never by their dbid.
    await page.get_by_role("navigation", name="Main").get_by_role("link", name="Instances").click()
    await expect(page.get_by_role("heading", name="Instances", exact=True)).to_be_visible()
    ada_item = page.locator(f"#instances-table #instance-{healthy['id']}")
    await expect(ada_item).to_contain_text("Ada Lovelace")
    await expect(ada_item).to_contain_text("ada@example.com")
    await expect(ada_item).not_to_contain_text(ada)
    await expect(ada_item.locator(".health")).to_have_text("healthy")
    await expect(page.locator(f"#instance-{paused['id']}")).to_contain_text("polling")
    await expect(page.locator(f"#instance-{paused['id']}")).to_contain_text("bo@example.com")
    await expect(page.locator(f"#instance-{invalid['id']} .health")).to_have_text("invalid")
    await pages.look(page, "31-instances-health")

    # A test event to a live callback: delivered, signed, marked as a test, no events.
    await page.get_by_role("link", name="healthy one").click()
    before = len(stack.receiver.received)
    await page.get_by_role("button", name="Send a test event").click()
    await expect(page.locator("#notice")).to_have_text(
        "The test event was delivered: the callback answered 200 OK."
    )
    await expect(page.locator("#test-event")).to_be_visible()
    await expect(page.locator("#delivery-status")).to_have_text("delivered")
    await expect(page.locator("article.attempt")).to_have_count(1)
    arrived = stack.receiver.received[before:]
    assert len(arrived) == 1
    body = arrived[0].json()
    assert body["message"]["relaybox"]["test"] is True
    assert body["message"]["events"] == []
    assert body["message"]["instanceId"] == healthy["id"]
    assert page.url.endswith(f"/deliveries/{body['id']}")
    expected = base64.b64encode(hmac.new(KEY.encode(), arrived[0].body, hashlib.sha256).digest())
    assert arrived[0].headers["elements-webhook-signature"] == f"sha256={expected.decode()}"
    verifier = Webhook("whsec_" + base64.b64encode(KEY.encode()).decode())
    assert verifier.verify(arrived[0].body, arrived[0].headers) == body
    logged = await stack.deliveries(healthy["id"])
    assert logged[0]["id"] == body["id"] and logged[0]["status"] == "delivered"
    await pages.look(page, "32-test-event-delivered")

    # A test event to a dead callback: not delivered, and the console says why.
    await page.goto(f"{stack.relaybox}/ui/instances/{retrying['id']}")
    await page.get_by_role("button", name="Send a test event").click()
    await expect(page.locator("#notice")).to_contain_text("The test event was not delivered.")
    await expect(page.locator("#notice")).to_contain_text("Could not connect to the callback")
    await expect(page.locator("#notice")).to_contain_text("It will be tried again")
    await expect(page.locator("#delivery-status")).to_have_text("pending")

    # Paused: queued, and said so, not sent.
    await page.goto(f"{stack.relaybox}/ui/instances/{paused['id']}")
    sent = len(stack.receiver.received)
    await page.get_by_role("button", name="Send a test event").click()
    await expect(page.locator("#notice")).to_contain_text("deliveries to this instance are paused")
    await expect(page.locator("#delivery-status")).to_have_text("pending")
    assert len(stack.receiver.received) == sent
    await pages.look(page, "33-test-event-paused")

    # Another organization's instance: not found, like one that does not exist; nothing
    # is sent, even with this session's own CSRF token.
    runtime = await Runtime.start(stack.settings, migrate=False)
    try:
        other = await create_org(runtime, "other org", "o@other.example")
    finally:
        await runtime.close()
    other_auth = {"Authorization": f"User {other.user_secret}, Organization {other.org_secret}"}
    theirs = await stack.connect(await stack.new_account("zed@example.com"), auth=other_auth)
    await page.goto(f"{stack.relaybox}/ui/overview")
    await expect(page.locator(f"#instance-{theirs['id']}")).to_have_count(0)
    csrf = await page.locator("form.signout input[name=csrf]").get_attribute("value")
    assert csrf
    sent = len(stack.receiver.received)
    for target in (theirs["id"], 999_999):
        refused = await context.request.post(
            f"{stack.relaybox}/ui/instances/{target}/test-event",
            form={"csrf": csrf},
            max_redirects=0,
        )
        assert refused.status == 404
    assert len(stack.receiver.received) == sent
    answer = await stack.http.get(
        f"{stack.api}/instances/{theirs['id']}/deliveries", headers=other_auth
    )
    assert answer.json() == []

    for html in pages.seen:
        for secret in (APP_SECRET, KEY, USER_SECRET, ORG_SECRET, healthy["token"]):
            assert secret not in html
    await context.close()


async def test_a_private_callback_url_is_refused_next_to_its_field(
    browser: Browser,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """As in production (RELAYBOX_ALLOW_PRIVATE_CALLBACKS off): the receiver stands for a
    public endpoint under a pretend name; an address inside the network is refused."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'relaybox.db'}"
    fake_dns(monkeypatch, {"hooks.example.test": ["127.0.0.1"]}, public=True)
    async with stack_of(tmp_path, url, allow_private_callbacks=False) as stack:
        public = stack.callback_url.replace("127.0.0.1", "hooks.example.test")
        account = await stack.new_account("eve@example.com")
        created = await stack.connect(
            account, "guarded", **{"event.notification.callback.url": public}
        )
        context = await browser.new_context()
        page = await context.new_page()
        await sign_in(page, stack)
        await page.goto(f"{stack.relaybox}/ui/instances/{created['id']}/edit")
        for private in ("http://10.1.2.3/events", "http://127.0.0.1:9/events"):
            await page.get_by_label("Callback URL for events").fill(private)
            await page.get_by_role("button", name="Save changes").click()
            await expect(page.locator("#error")).to_contain_text("Nothing was changed")
            await expect(page.locator("#callback_url-error")).to_contain_text(
                "is a non-public address"
            )
            await expect(page.locator("#callback_url-error")).not_to_contain_text(
                "event.notification"
            )
            await expect(page.get_by_label("Callback URL for events")).to_have_attribute(
                "aria-invalid", "true"
            )
        shown = await api(stack, "GET", f"/instances/{created['id']}")
        assert shown["configuration"]["event.notification.callback.url"] == public

        # Its test event still reaches the public name.
        await page.goto(f"{stack.relaybox}/ui/instances/{created['id']}")
        await page.get_by_role("button", name="Send a test event").click()
        await expect(page.locator("#notice")).to_have_text(
            "The test event was delivered: the callback answered 200 OK."
        )
        assert stack.receiver.received[-1].json()["message"]["relaybox"]["test"] is True
        await context.close()
