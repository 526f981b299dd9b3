"""Connecting a Google Drive account through the console, in a real browser, against the
Google Drive sandbox, next to the Dropbox sandbox on another origin.

The journey: choose Google Drive on the connect form (which offers no longpoll), consent on
Google's (the sandbox's) page, come back to an instance page that says Google Drive, see a
file made on the sandbox's files page arrive as a signed event, and re-authenticate at
Google once the grant is revoked. The console's CSP lets its forms lead to both providers'
consent pages (each on its own origin here), and refuses a longpoll Drive instance. Then
the README's tour: `relaybox serve --sandbox` and its seeded Google client, in the console.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.async_api import Browser, expect

from relaybox.core.signing import elements_signature
from relaybox.gdrive_sandbox.app import create_app as create_gdrive
from tests.browser.test_console import (
    CREDENTIAL,
    SIGNATURE_KEY,
    Pages,
    browser,  # noqa: F401  (fixture)
    reload_until,
    sign_in,
)
from tests.integration.test_cli_tour import (
    Server,
    credential,
    server,  # noqa: F401  (fixture: `relaybox serve --sandbox` as a child process)
)
from tests.support.servers import CallbackReceiver, eventually, serving
from tests.support.stack import AUTH, ORG_SECRET, USER_SECRET, Stack
from tests.support.stack import running_stack as stack_of

CLIENT_ID = "console-test.apps.googleusercontent.com"
CLIENT_SECRET = "console-drive-secret-7781"


@dataclass
class Drive:
    """The Google Drive sandbox beside a relaybox whose Dropbox is the stack's sandbox."""

    url: str
    http: httpx.AsyncClient

    async def control(self, method: str, path: str, **kwargs: Any) -> Any:
        answer = await self.http.request(method, f"{self.url}/_sandbox{path}", **kwargs)
        assert answer.status_code < 400, answer.text
        return answer.json()

    async def new_account(self, email: str) -> str:
        made = await self.control("POST", "/accounts", json={"email": email})
        return str(made["permission_id"])

    async def create(self, account: str, name: str) -> str:
        made = await self.control("POST", f"/accounts/{account}/files", json={"name": name})
        return str(made["id"])

    async def channel_ids(self) -> set[str]:
        return {c["id"] for c in (await self.control("GET", "/channels"))["channels"]}


@pytest.fixture
async def stacks(tmp_path: Path) -> AsyncIterator[tuple[Stack, Drive]]:
    async with serving(create_gdrive(push_delay=0.05)) as drive_url:
        google: dict[str, Any] = {
            f"googledrive_{host}_url": drive_url for host in ("api", "oauth", "accounts")
        }
        database = f"sqlite+aiosqlite:///{tmp_path / 'relaybox.db'}"
        async with stack_of(tmp_path, database, retry_schedule="0.2", **google) as stack:
            drive = Drive(drive_url, stack.http)
            # Google checks the redirect URI exactly, at the consent and at the exchange.
            redirect = f"{stack.relaybox}/ui/oauth/callback"
            await drive.control(
                "POST",
                "/apps",
                json={
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "name": "console test",
                    "redirect_uris": [redirect],
                },
            )
            yield stack, drive


def origin(url: str) -> str:
    found = re.match(r"https?://[^/]+", url)
    assert found is not None
    return found.group(0)


def signed(receiver: CallbackReceiver) -> bool:
    return all(
        item.headers["elements-webhook-signature"] == elements_signature(SIGNATURE_KEY, item.body)
        for item in receiver.received
    )


async def test_connect_google_drive_see_an_event_and_reauthenticate(
    browser: Browser,  # noqa: F811
    stacks: tuple[Stack, Drive],
) -> None:
    stack, drive = stacks
    pages = Pages()
    grace = await drive.new_account("grace@example.com")
    await drive.create(grace, "already-there.txt")
    dropbox_account = await stack.new_account("ada@example.com")
    await stack.connect(dropbox_account, "a dropbox one")
    context = await browser.new_context()
    page = await context.new_page()
    visited: list[str] = []
    page.on("request", lambda request: visited.append(request.url))

    await sign_in(page, stack)
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()

    # The connect form offers each provider; Google Drive's has Google's words and no
    # longpoll, and its page's CSP lets a form lead to either provider's consent page.
    await page.get_by_role("link", name="Connect an account").first.click()
    await expect(page.get_by_role("heading", name="Connect a Dropbox account")).to_be_visible()
    options = page.get_by_label("Event source").locator("option")
    await expect(options).to_have_text(["webhooks", "polling", "longpoll"])
    providers = page.get_by_role("navigation", name="Provider")
    await providers.get_by_role("link", name="Google Drive").click()
    await expect(page.get_by_role("heading", name="Connect a Google Drive account")).to_be_visible()
    await expect(providers.get_by_role("link", name="Google Drive")).to_have_attribute(
        "aria-current", "page"
    )
    await expect(options).to_have_text(["webhooks", "polling"])
    await expect(page.locator("#vendor-note")).to_contain_text("Google Drive has no longpoll")
    answer = await context.request.get(page.url)
    policy = answer.headers["content-security-policy"]
    form_action = re.search(r"form-action ([^;]+)", policy)
    assert form_action is not None
    assert set(form_action.group(1).split()) == {"'self'", origin(stack.sandbox), drive.url}

    await page.get_by_label("Name").fill("console drive")
    await page.get_by_label("Tags").fill("team-g")
    await page.get_by_label("Client ID").fill(CLIENT_ID)
    await page.get_by_label("Client secret").fill(CLIENT_SECRET)
    await page.get_by_label("Callback URL for events").fill(stack.callback_url)
    await page.get_by_label("Signature key").fill(SIGNATURE_KEY)
    await pages.look(page, "30-connect-drive")
    await page.get_by_role("button", name="Continue to Google Drive").click()

    # Google's consent page (the sandbox's), opened under another host name so that the
    # way back is cross-site, as it is from accounts.google.com.
    await expect(page).to_have_url(re.compile(r"/o/oauth2/v2/auth\?"))
    assert page.url.startswith(drive.url)
    assert f"client_id={CLIENT_ID}" in page.url and "access_type=offline" in page.url
    await page.goto(page.url.replace("127.0.0.1", "localhost", 1))
    await page.locator("#permission_id").select_option(grace)
    await page.locator("#allow").click()

    await expect(page.locator("#notice")).to_have_text("The account is connected.")
    assert any("/ui/oauth/callback?" in url and "hop=1" in url for url in visited)
    instance_url = page.url.split("?")[0]
    await expect(page.locator("#provider")).to_have_text("Google Drive")
    configuration = page.locator("table.keys")
    await expect(configuration.get_by_role("row", name="Google Drive account")).to_contain_text(
        grace
    )
    await pages.look(page, "31-instance-drive")
    instance_id = int(instance_url.rsplit("/", 1)[1])
    created = await stack.http.get(f"{stack.api}/instances/{instance_id}", headers=AUTH)
    instance = created.json()
    assert instance["element"]["key"] == "googledrive"
    assert instance["configuration"]["oauth.callback.url"] == f"{stack.relaybox}/ui/oauth/callback"
    assert instance["eventSource"] == "webhooks" and instance["tags"] == ["team-g"]

    # Each instance says its provider in the list.
    await page.get_by_role("link", name="Instances").first.click()
    drive_row = page.get_by_role("row").filter(has_text="console drive")
    await expect(drive_row.locator("td.provider")).to_have_text("Google Drive")
    await expect(drive_row).to_contain_text("grace@example.com")
    dropbox_row = page.get_by_role("row").filter(has_text="a dropbox one")
    await expect(dropbox_row.locator("td.provider")).to_have_text("Dropbox")
    await pages.look(page, "32-instances-both")

    # A file made on the Drive sandbox's own page arrives, signed, on the open instance
    # page (live) and at the callback.
    await page.goto(instance_url)
    await expect(page.get_by_text("Change something in the Google Drive account")).to_be_visible()
    files = await context.new_page()
    await files.goto(f"{drive.url}/_sandbox/ui?account={grace}")
    await reload_until(files, "Channel id")  # the push channel relaybox opened is listed
    card = files.locator("section.card").filter(has_text="Create a file")
    await card.get_by_label("Name").fill("hello.txt")
    await card.get_by_role("button", name="Create file").click()
    await expect(files.locator("#message")).to_be_visible()
    row = page.locator("#events-table tbody tr").filter(has_text="/hello.txt")
    await expect(row).to_contain_text("CREATED", timeout=20_000)
    await expect(row.get_by_role("link", name="delivered")).to_be_visible(timeout=20_000)
    await stack.receiver.wait_for(lambda r: any(e["path"] == "/hello.txt" for e in r.events()))
    [event] = stack.receiver.events()
    assert event["elementKey"] == "googledrive" and event["eventType"] == "CREATED"
    assert signed(stack.receiver)
    assert "/already-there.txt" not in await page.locator("body").inner_text()
    await pages.look(page, "33-instance-drive-event")

    # The grant is revoked at Google: the next change finds the instance's credentials
    # refused, and re-authenticating goes to Google's consent page, not Dropbox's.
    watched = await drive.channel_ids()
    await drive.control("POST", "/tokens/revoke", json={"permission_id": grace})
    await drive.create(grace, "unseen.txt")
    alert = page.locator(".alert.error").filter(has_text="refused this instance's credentials")
    await expect(alert).to_contain_text("Google Drive refused", timeout=20_000)
    await pages.look(page, "34-instance-drive-invalid")
    await page.get_by_role("button", name="Re-authenticate with Google Drive").click()
    await expect(page).to_have_url(re.compile(r"/o/oauth2/v2/auth\?"))
    assert page.url.startswith(drive.url) and f"client_id={CLIENT_ID}" in page.url
    await page.locator("#permission_id").select_option(grace)
    await page.locator("#allow").click()
    await expect(page.locator("#notice")).to_have_text("The account is re-authenticated.")
    await expect(page.locator("#provider")).to_have_text("Google Drive")
    await expect(page.locator(".badge.ok")).to_have_text("valid")

    # Changes flow again after the re-authentication, through a new push channel (the
    # revoked grant's could not be stopped: its messages are refused).
    async def new_channel() -> bool:
        return bool(await drive.channel_ids() - watched)

    await eventually(new_channel)
    await drive.create(grace, "after.txt")
    await stack.receiver.wait_for(lambda r: any(e["path"] == "/after.txt" for e in r.events()))
    assert signed(stack.receiver)

    # Its edit form offers its own event sources; the overview names its provider too.
    await page.goto(f"{instance_url}/edit")
    await expect(page.get_by_label("Event source").locator("option")).to_have_text(
        ["webhooks", "polling"]
    )
    await page.goto(f"{stack.relaybox}/ui/overview")
    await expect(page.locator(f"#instance-{instance_id} .provider")).to_have_text("Google Drive")

    # Longpoll is refused for Google Drive even when a form asks for it, before consent.
    csrf = await page.locator("input[name=csrf]").first.get_attribute("value")
    assert csrf is not None
    refused = await context.request.post(
        f"{stack.relaybox}/ui/instances/new",
        form={
            "csrf": csrf,
            "element": "googledrive",
            "name": "longpolling drive",
            "app_key": CLIENT_ID,
            "app_secret": CLIENT_SECRET,
            "events": "on",
            "callback_url": stack.callback_url,
            "vendor_type": "longpoll",
        },
        max_redirects=0,
    )
    assert refused.status == 400
    text = await refused.text()
    assert "Google Drive has no longpoll" in text
    assert "Connect a Google Drive account" in text
    pages.seen.append(text)

    listed = await stack.http.get(f"{stack.api}/instances", headers=AUTH)
    assert sorted(i["name"] for i in listed.json()) == ["a dropbox one", "console drive"]
    for html in pages.seen:
        for secret in (CLIENT_SECRET, SIGNATURE_KEY, USER_SECRET, ORG_SECRET, instance["token"]):
            assert secret not in html
    assert CREDENTIAL not in "".join(pages.seen)
    await context.close()


async def test_the_tour_connects_the_sandbox_google_drive_in_the_console(
    browser: Browser,  # noqa: F811
    server: Server,  # noqa: F811
) -> None:
    """README's tour, step 5, with Google Drive: `relaybox serve --sandbox` as a newcomer
    runs it, its seeded client id and secret typed into the console, the seeded account's
    consent, and a file made on the sandbox's files page shown on the instance page."""
    printed = "\n".join(server.lines)
    secret = re.search(r"app secret: (\S+)", printed)
    client_id = re.search(r"client id: (\S+)", printed)
    assert secret is not None and client_id is not None
    receiver = CallbackReceiver()
    context = await browser.new_context()
    page = await context.new_page()
    async with serving(receiver.app()) as receiver_url:
        await page.goto(f"{server.base}/ui/signin")
        await page.get_by_label("Credential").fill(credential(server))
        await page.get_by_role("button", name="Sign in").click()
        await page.get_by_role("link", name="Connect an account").first.click()
        await page.get_by_role("navigation", name="Provider").get_by_text("Google Drive").click()
        await page.get_by_label("Name").fill("tour drive")
        await page.get_by_label("Client ID").fill(client_id.group(1))
        await page.get_by_label("Client secret").fill(secret.group(1))
        await page.get_by_label("Callback URL for events").fill(f"{receiver_url}/events")
        await page.get_by_role("button", name="Continue to Google Drive").click()
        await expect(page).to_have_url(re.compile(r"/sandbox/gdrive/o/oauth2/v2/auth\?"))
        await expect(page.locator("#permission_id")).to_contain_text("demo@example.com")
        await page.locator("#allow").click()
        await expect(page.locator("#notice")).to_have_text("The account is connected.")
        await expect(page.locator("#provider")).to_have_text("Google Drive")

        files = await context.new_page()
        await files.goto(f"{server.base}/sandbox/gdrive/_sandbox/ui")
        await reload_until(files, "Channel id")  # the push channel relaybox opened
        card = files.locator("section.card").filter(has_text="Create a folder")
        await card.get_by_label("Name").fill("Made in the tour")
        await card.get_by_role("button", name="Create folder").click()
        row = page.locator("#events-table tbody tr").filter(has_text="/Made in the tour")
        await expect(row).to_contain_text("CREATED", timeout=20_000)
        await expect(row.get_by_role("link", name="delivered")).to_be_visible(timeout=20_000)
    [event] = receiver.events()
    assert event["elementKey"] == "googledrive" and event["objectType"] == "folders"
    await context.close()
