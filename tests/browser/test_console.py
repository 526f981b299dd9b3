"""The web console in a real browser (Debian's chromium through playwright), against real servers.

The journey: sign in, connect a sandbox account through the console and the sandbox's
consent page, watch an event and its delivery, recover a failed delivery, turn events off.
Then what must be refused: a wrong credential, another organization's instance, a POST
without the CSRF token. No page may contain a secret.

Chromium is `/usr/bin/chromium` (`apt-get install chromium`); without it these tests fail
in CI (`CI=true`) and are skipped elsewhere.
"""

from __future__ import annotations

import asyncio
import os
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser, BrowserContext, Page, async_playwright, expect

from relaybox.runtime import Runtime
from relaybox.services.orgs import create_org
from tests.support.stack import APP_KEY, APP_SECRET, AUTH, ORG_SECRET, USER_SECRET, Stack
from tests.support.stack import running_stack as stack_of

CHROMIUM = Path("/usr/bin/chromium")
if not CHROMIUM.exists():
    REASON = "the browser tests need /usr/bin/chromium (apt-get install chromium)"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(REASON, pytrace=False)
    pytest.skip(REASON, allow_module_level=True)

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CREDENTIAL = f"User {USER_SECRET}, Organization {ORG_SECRET}"
SIGNATURE_KEY = "console-signature-key-5150"
SCREENSHOTS = os.environ.get("RELAYBOX_CONSOLE_SCREENSHOTS")


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'relaybox.db'}"
    async with stack_of(tmp_path, url, retry_schedule="0.2") as running:
        yield running


class Pages:
    """Every HTML page the browser was shown, to check that none of them holds a secret."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    async def look(self, page: Page, name: str) -> str:
        html = await page.content()
        self.seen.append(html)
        if SCREENSHOTS:
            Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
            await page.screenshot(path=f"{SCREENSHOTS}/{name}.png", full_page=True)
        return html


async def sign_in(page: Page, stack: Stack, credential: str = CREDENTIAL) -> None:
    await page.goto(f"{stack.relaybox}/ui/")
    await expect(page).to_have_url(re.compile(r"/ui/signin$"))
    await page.get_by_label("Credential").fill(credential)
    await page.get_by_role("button", name="Sign in").click()


async def reload_until(page: Page, text: str, timeout: float = 15.0) -> None:
    """Reload the page until `text` shows: in the page's text, not its HTML, where a path
    carries the <wbr> marks that let it wrap at its slashes."""
    deadline = asyncio.get_running_loop().time() + timeout
    while text not in await page.locator("body").inner_text():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{text!r} did not appear on {page.url}")
        await asyncio.sleep(0.3)
        await page.reload()


async def test_connect_watch_recover_and_turn_off(browser: Browser, stack: Stack) -> None:
    pages = Pages()
    account = await stack.new_account("ada@example.com")
    await stack.upload(account, "/already-there.txt", b"old")
    context = await browser.new_context()
    page = await context.new_page()
    visited: list[str] = []
    page.on("request", lambda request: visited.append(request.url))

    await sign_in(page, stack)
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    await pages.look(page, "01-instances-empty")

    await page.get_by_role("link", name="Connect an account").first.click()
    await page.get_by_label("Name").fill("console dropbox")
    await page.get_by_label("Tags").fill("team-a, console")
    await page.get_by_label("App key").fill(APP_KEY)
    await page.get_by_label("App secret").fill(APP_SECRET)
    await page.get_by_label("Callback URL for events").fill(stack.callback_url)
    await page.get_by_label("Signature key").fill(SIGNATURE_KEY)
    await pages.look(page, "02-connect-form")
    await page.get_by_role("button", name="Continue to Dropbox").click()

    # The sandbox's consent page. Opened under another host name (localhost, not
    # 127.0.0.1), Dropbox's redirect back is cross-site as it is in production, so the
    # browser withholds the SameSite=Strict session cookie and the console must hop.
    await expect(page).to_have_url(re.compile(r"/oauth2/authorize\?"))
    assert "127.0.0.1" in page.url
    await page.goto(page.url.replace("127.0.0.1", "localhost", 1))
    await page.locator("#account_id").select_option(account)
    await page.locator("#allow").click()

    await expect(page.locator("#notice")).to_have_text("The account is connected.")
    assert any("/ui/oauth/callback?" in url and "hop=1" in url for url in visited)
    instance_url = page.url.split("?")[0]
    await pages.look(page, "03-instance-new")

    await page.get_by_role("link", name="Instances").first.click()
    row = page.get_by_role("row").filter(has_text="console dropbox")
    await expect(row).to_contain_text("ada@example.com")
    await expect(row.locator(".health")).to_have_text("healthy")
    await pages.look(page, "04-instances-one")

    # An upload becomes an event, delivered.
    await stack.upload(account, "/hello.txt", b"hello")
    await page.goto(instance_url)
    await reload_until(page, "/hello.txt")
    await reload_until(page, "delivered")
    events = page.locator("#events-table tbody tr")
    await expect(events.first).to_contain_text("CREATED")
    await expect(events.first).to_contain_text("/hello.txt")
    assert "/already-there.txt" not in await page.locator("body").inner_text()
    await pages.look(page, "05-instance-delivered")

    # The callback fails twice (the try and the one retry), saying why in its answer: the
    # delivery fails and the subscription pauses.
    stack.receiver.statuses.extend([500, 500])
    stack.receiver.answer_body = b'{"error": "database is down"}'
    stack.receiver.headers = {"X-Trace": "trace-42"}
    await stack.upload(account, "/second.txt", b"two")
    await reload_until(page, "/second.txt")
    await reload_until(page, "Resume deliveries")
    failed = page.locator("article.delivery").first
    await expect(failed).to_contain_text("failed")
    await expect(failed.locator("table.attempts")).to_contain_text(
        "The callback answered 500 Internal Server Error."
    )
    await pages.look(page, "06-instance-failed")
    stack.receiver.answer_body, stack.receiver.headers = b"", {}

    # Filters narrow the event list, and the paging keeps them.
    await page.locator("#event-filters").get_by_label("Path contains").fill("SECOND")
    await page.locator("#event-filters").get_by_role("button", name="Filter").click()
    await expect(page.locator("#events-table tbody tr")).to_have_count(1)
    await expect(page.locator("#events-table")).to_contain_text("/second.txt")
    await page.locator("#event-filters").get_by_label("Delivery").select_option("delivered")
    await page.locator("#event-filters").get_by_role("button", name="Filter").click()
    await expect(page.locator("#no-match")).to_be_visible()
    await page.locator("#event-filters").get_by_label("Path contains").fill("")
    await page.locator("#event-filters").get_by_role("button", name="Filter").click()
    await expect(page.locator("#events-table tbody tr")).to_have_count(1)
    await expect(page.locator("#events-table")).to_contain_text("/hello.txt")
    await page.locator("#event-filters").get_by_role("link", name="Clear").click()
    await expect(page.locator("#events-table tbody tr")).to_have_count(2)

    # The failed event links to its delivery: the exact request, both signatures, and
    # each attempt's answer.
    await (
        page.locator("#events-table tbody tr")
        .filter(has_text="/second.txt")
        .get_by_role("link", name="failed")
        .click()
    )
    await expect(page.locator("#request-body")).to_contain_text('"path": "/second.txt"')
    sent = page.locator("#attempt-1 table.request-headers")
    await expect(sent).to_contain_text("elements-webhook-signature")
    await expect(sent).to_contain_text("webhook-signature")
    await expect(sent).to_contain_text("webhook-timestamp")
    first_attempt = stack.receiver.received[-2]
    await expect(sent).to_contain_text(first_attempt.headers["elements-webhook-signature"])
    await expect(sent).to_contain_text(first_attempt.headers["webhook-signature"])
    await expect(page.locator("#attempt-1 .response-body")).to_contain_text("database is down")
    await expect(page.locator("#attempt-1 table.response-headers")).to_contain_text("trace-42")
    await expect(page.locator("#attempt-2 .problem")).to_have_text(
        "The callback answered 500 Internal Server Error."
    )
    await expect(page.locator("#paused")).to_contain_text("used up its retries")
    await pages.look(page, "06b-delivery-failed")

    # Resume, then redeliver it from its page; the message shows once.
    delivery_url = page.url
    await page.goto(instance_url)
    await page.get_by_role("button", name="Resume deliveries").click()
    await expect(page.locator("#notice")).to_contain_text("Deliveries resumed")
    await page.reload()
    await expect(page.locator("#notice")).to_have_count(0)
    await page.goto(delivery_url)
    await page.get_by_role("button", name="Redeliver").click()
    await expect(page.locator("#notice")).to_have_text("The delivery is queued to be sent again.")
    await expect(page).to_have_url(delivery_url)
    for _ in range(50):
        if (await page.locator("#delivery-status").inner_text()) == "delivered":
            break
        await asyncio.sleep(0.3)
        await page.reload()
    await expect(page.locator("#delivery-status")).to_have_text("delivered")
    await expect(page.locator("article.attempt")).to_have_count(3)
    assert [status for _, status in stack.receiver.answered[-3:]] == [500, 500, 200]
    await pages.look(page, "07-delivery-redelivered")

    # Redeliver failed says truthfully that there is nothing to redeliver now.
    await page.goto(instance_url)
    await page.get_by_role("button", name="Redeliver failed").click()
    await expect(page.locator("#notice")).to_have_text(
        "Nothing to redeliver: no delivery has failed."
    )

    await page.get_by_role("button", name="Turn events off").click()
    await expect(page.locator("#notice")).to_have_text("Events are off.")
    await expect(page.get_by_role("button", name="Turn events on")).to_be_visible()
    answer = await stack.http.get(f"{stack.api}/instances", headers=AUTH)
    [instance] = answer.json()
    assert instance["eventsEnabled"] is False
    assert instance["configuration"]["oauth.callback.url"].endswith("/ui/oauth/callback")
    assert instance["tags"] == ["team-a", "console"]
    await pages.look(page, "08-instance-events-off")

    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/ui/signin$"))
    await page.goto(instance_url)
    await expect(page).to_have_url(re.compile(r"/ui/signin$"))

    secrets = [APP_SECRET, SIGNATURE_KEY, USER_SECRET, ORG_SECRET, instance["token"]]
    assert len(pages.seen) >= 8
    for html in pages.seen:
        for secret in secrets:
            assert secret not in html
    await context.close()


async def session_cookie(context: BrowserContext) -> dict[str, object] | None:
    for cookie in await context.cookies():
        if cookie.get("name") == "relaybox_session":
            return dict(cookie)
    return None


async def test_refusals(browser: Browser, stack: Stack) -> None:
    pages = Pages()
    context = await browser.new_context()
    page = await context.new_page()

    # A wrong credential: an error, and no session.
    await sign_in(page, stack, f"User {USER_SECRET}, Organization not-the-org-secret")
    await expect(page.locator("#error")).to_contain_text("not valid")
    assert await session_cookie(context) is None
    await pages.look(page, "10-signin-wrong")
    await page.goto(f"{stack.relaybox}/ui/")
    await expect(page).to_have_url(re.compile(r"/ui/signin$"))

    # Another organization's instance is not found, like one that does not exist.
    runtime = await Runtime.start(stack.settings, migrate=False)
    try:
        other = await create_org(runtime, "other org", "o@other.example")
    finally:
        await runtime.close()
    other_auth = {"Authorization": f"User {other.user_secret}, Organization {other.org_secret}"}
    account = await stack.new_account("bo@example.com")
    theirs = await stack.connect(account, "theirs", auth=other_auth)
    ours = await stack.connect(account, "ours")

    await sign_in(page, stack)
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    cookie = await session_cookie(context)
    assert cookie is not None
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["path"] == "/ui"
    assert CREDENTIAL not in str(cookie["value"]) and USER_SECRET not in str(cookie["value"])
    listing = await pages.look(page, "11-instances")
    assert "ours" in listing and "theirs" not in listing

    for missing in (theirs["id"], 999_999, "not-a-number"):
        answer = await page.goto(f"{stack.relaybox}/ui/instances/{missing}")
        assert answer is not None and answer.status == 404
        await expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    await pages.look(page, "12-not-found")
    refused = await context.request.post(
        f"{stack.relaybox}/ui/instances/{theirs['id']}/events",
        form={"enabled": "false", "csrf": "whatever"},
        max_redirects=0,
    )
    assert refused.status in (403, 404)

    # A POST without the CSRF token, or with a wrong one, changes nothing.
    ours_url = f"{stack.relaybox}/ui/instances/{ours['id']}"
    forms: list[dict[str, str | float | bool]] = [
        {"enabled": "false"},
        {"enabled": "false", "csrf": "forged"},
    ]
    for form in forms:
        posted = await context.request.post(f"{ours_url}/events", form=form, max_redirects=0)
        assert posted.status == 403
        assert "Form expired" in await posted.text()
    state = await stack.http.get(f"{stack.api}/instances/{ours['id']}", headers=AUTH)
    assert state.json()["eventsEnabled"] is True
    other_state = await stack.http.get(f"{stack.api}/instances/{theirs['id']}", headers=other_auth)
    assert other_state.json()["eventsEnabled"] is True

    # The same form from the page itself (with its token) goes through.
    await page.goto(ours_url)
    await pages.look(page, "13-instance-ours")
    await page.get_by_role("button", name="Turn events off").click()
    await expect(page.locator("#notice")).to_have_text("Events are off.")

    # What the instance service refuses is shown on the form, and nothing leaves for Dropbox.
    # (A name already in use is not refused: names are not unique, SPEC section 9.)
    await page.goto(f"{stack.relaybox}/ui/instances/new")
    await page.get_by_label("Name").fill("ours")
    await page.get_by_label("App key").fill(APP_KEY)
    await page.get_by_label("App secret").fill(APP_SECRET)
    await page.get_by_label("Callback URL for events").fill("")
    await page.get_by_role("button", name="Continue to Dropbox").click()
    await expect(page.locator("#error")).to_contain_text("event.notification.callback.url")
    assert "/ui/instances/new" in page.url
    await pages.look(page, "14-connect-error")

    # A sign-in POST without the sign-in form's token is refused too.
    fresh = await browser.new_context()
    posted = await fresh.request.post(
        f"{stack.relaybox}/ui/signin", form={"credential": CREDENTIAL}, max_redirects=0
    )
    assert posted.status == 403
    assert await session_cookie(fresh) is None
    await fresh.close()

    # Signing out ends the session itself: a copy of its cookie, which opened the console
    # until then, opens nothing afterwards.
    copied = await session_cookie(context)
    assert copied is not None
    thief = await browser.new_context()
    await thief.add_cookies(
        [
            {
                "name": "relaybox_session",
                "value": str(copied["value"]),
                "domain": "127.0.0.1",
                "path": "/ui",
            }
        ]
    )
    stolen = await thief.new_page()
    await stolen.goto(f"{stack.relaybox}/ui/")
    await expect(stolen.get_by_role("heading", name="Instances")).to_be_visible()
    await page.goto(f"{stack.relaybox}/ui/")
    await page.get_by_role("button", name="Sign out").click()
    await expect(page).to_have_url(re.compile(r"/ui/signin$"))
    await stolen.goto(f"{stack.relaybox}/ui/")
    await expect(stolen).to_have_url(re.compile(r"/ui/signin$"))
    await thief.close()

    secrets = [APP_SECRET, "sig-key-123", USER_SECRET, ORG_SECRET, ours["token"]]
    for html in pages.seen:
        for secret in secrets:
            assert secret not in html
    await context.close()


async def test_edit_fixes_a_failing_callback_then_delete(browser: Browser, stack: Stack) -> None:
    """A dead callback URL fixed in the console makes the next redelivery succeed; a bad
    one is refused next to its field; delete (after typing the name) removes the
    instance."""
    pages = Pages()
    account = await stack.new_account("cy@example.com")
    dead = "http://127.0.0.1:9/events"  # the discard port: nothing answers there
    config: dict[str, Any] = {"event.notification.callback.url": dead}
    created = await stack.connect(account, "editable", **config)
    base = f"{stack.relaybox}/ui/instances/{created['id']}"
    context = await browser.new_context()
    page = await context.new_page()
    await sign_in(page, stack)

    await stack.upload(account, "/edit-me.txt", b"x")
    await page.goto(base)
    await reload_until(page, "Resume deliveries")
    await expect(page.locator("article.delivery").first).to_contain_text("failed")
    await expect(page.locator("table.attempts").first).to_contain_text("Could not connect")

    await page.get_by_role("link", name="Edit").click()
    await expect(page.get_by_label("Callback URL for events")).to_have_value(dead)
    await page.get_by_label("Callback URL for events").fill("ftp://example.com/x")
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.locator("#callback_url-error")).to_contain_text("http")
    await expect(page.get_by_label("Name")).to_have_value("editable")
    await pages.look(page, "20-edit-refused")
    answer = await stack.http.get(f"{stack.api}/instances/{created['id']}", headers=AUTH)
    assert answer.json()["configuration"]["event.notification.callback.url"] == dead

    await page.get_by_label("Callback URL for events").fill(stack.callback_url)
    await page.get_by_label("Name").fill("edited")
    await page.get_by_label("Tags").fill("fixed, console")
    await page.get_by_role("button", name="Save changes").click()
    await expect(page.locator("#notice")).to_have_text("Changes saved.")
    answer = await stack.http.get(f"{stack.api}/instances/{created['id']}", headers=AUTH)
    saved = answer.json()
    assert saved["name"] == "edited" and saved["tags"] == ["fixed", "console"]
    assert saved["configuration"]["event.notification.callback.url"] == stack.callback_url
    # The signature key was left blank: the one set is kept.
    assert saved["configuration"]["event.notification.signature.key"] != ""

    await page.get_by_role("button", name="Resume deliveries").click()
    await page.get_by_role("button", name="Redeliver failed").click()
    await expect(page.locator("#notice")).to_have_text(
        "1 failed delivery is queued to be sent again."
    )
    await stack.receiver.wait_for(lambda r: any(e["path"] == "/edit-me.txt" for e in r.events()))
    await pages.look(page, "21-instance-edited")

    await page.get_by_role("link", name="Delete").click()
    await page.get_by_label("Type the instance's name to confirm").fill("not it")
    await page.get_by_role("button", name="Delete for good").click()
    await expect(page.locator("#confirm-error")).to_be_visible()
    answer = await stack.http.get(f"{stack.api}/instances/{created['id']}", headers=AUTH)
    assert answer.status_code == 200
    await pages.look(page, "22-delete-confirm")
    await page.get_by_label("Type the instance's name to confirm").fill("edited")
    await page.get_by_role("button", name="Delete for good").click()
    await expect(page.locator("#notice")).to_have_text("edited is deleted.")
    await expect(page.get_by_role("row").filter(has_text="edited")).to_have_count(0)
    answer = await stack.http.get(f"{stack.api}/instances/{created['id']}", headers=AUTH)
    assert answer.status_code == 404
    for html in pages.seen:
        for secret in (APP_SECRET, "sig-key-123", USER_SECRET, ORG_SECRET, created["token"]):
            assert secret not in html
    await context.close()


async def test_an_open_instance_page_shows_changes_live(browser: Browser, stack: Stack) -> None:
    """A folder created on the sandbox's own page appears on an instance page that is
    already open, with its delivery, without a reload."""
    account = await stack.new_account("di@example.com")
    created = await stack.connect(account, "live one")
    context = await browser.new_context()
    page = await context.new_page()
    await sign_in(page, stack)
    await page.goto(f"{stack.relaybox}/ui/instances/{created['id']}")
    await expect(page.get_by_text("No events yet.")).to_be_visible()
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    await page.evaluate("window.openedOnce = true")

    sandbox = await context.new_page()
    await sandbox.goto(f"{stack.sandbox}/_sandbox/ui?account_id={account}")
    await sandbox.get_by_label("Path").fill("/Made live")
    await sandbox.get_by_role("button", name="Create folder").click()
    await expect(sandbox.get_by_text("Created folder /Made live")).to_be_visible()

    row = page.locator("#events-table tbody tr").filter(has_text="/Made live")
    await expect(row).to_contain_text("CREATED", timeout=20_000)
    await expect(row.get_by_role("link", name="delivered")).to_be_visible(timeout=20_000)
    assert await page.evaluate("window.openedOnce") is True
    assert navigations == []
    # The live region's forms still work (their CSRF token came with the new HTML).
    await page.get_by_role("button", name="Turn events off").click()
    await expect(page.locator("#notice")).to_have_text("Events are off.")
    await context.close()
