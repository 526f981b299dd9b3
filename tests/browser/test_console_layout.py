"""Every console page at a phone's width (390 x 844): nothing wider than the viewport,
long paths and ids wrapping instead of pushing the page sideways. With
RELAYBOX_CONSOLE_SCREENSHOTS=<folder> the same tour saves each page's screenshot at a
desktop width too (the pictures of docs/console.md)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, Page, expect

from tests.browser.test_console import (
    CREDENTIAL,
    SCREENSHOTS,
    browser,  # noqa: F401  (fixture)
    reload_until,
    sign_in,
)
from tests.support.stack import APP_SECRET, ORG_SECRET, USER_SECRET, Stack
from tests.support.stack import running_stack as stack_of

LONG = "/a folder with a rather long name/" + "sub-folder-" * 8 + "/a-very-long-file-name.txt"


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    url = f"sqlite+aiosqlite:///{tmp_path / 'relaybox.db'}"
    async with stack_of(tmp_path, url, retry_schedule="0.2") as running:
        yield running


async def fits(page: Page, width: int) -> None:
    scroll_width = await page.evaluate("document.scrollingElement.scrollWidth")
    assert scroll_width <= width, f"{page.url} is {scroll_width} px wide at {width} px"


async def test_every_page_fits_a_phone(browser: Browser, stack: Stack) -> None:  # noqa: F811
    account = await stack.new_account("narrow@example.com")
    created = await stack.connect(account, "a phone-sized instance with a long name")
    base = f"{stack.relaybox}/ui/instances/{created['id']}"
    stack.receiver.statuses.extend([500, 500])
    stack.receiver.answer_body = b'{"error": "the receiver is down for maintenance right now"}'
    await stack.upload(account, LONG, b"x")

    context = await browser.new_context(viewport={"width": 390, "height": 844})
    page = await context.new_page()
    await page.goto(f"{stack.relaybox}/ui/signin")
    tour: list[tuple[str, str]] = [("signin", f"{stack.relaybox}/ui/signin")]
    await sign_in(page, stack, CREDENTIAL)
    await expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    await page.goto(base)
    await reload_until(page, "Resume deliveries")
    delivery = await page.locator("article.delivery a").first.get_attribute("href")
    assert delivery is not None
    tour += [
        ("overview", f"{stack.relaybox}/ui/overview"),
        ("instances", f"{stack.relaybox}/ui/"),
        ("connect", f"{stack.relaybox}/ui/instances/new"),
        ("connect-googledrive", f"{stack.relaybox}/ui/instances/new?element=googledrive"),
        ("instance", base),
        ("instance-filtered", f"{base}?type=CREATED&path=sub-folder"),
        ("delivery", f"{stack.relaybox}{delivery}"),
        ("edit", f"{base}/edit"),
        ("delete", f"{base}/delete"),
        ("not-found", f"{stack.relaybox}/ui/instances/999999"),
    ]
    html: list[str] = []
    for name, url in tour:
        await page.goto(url)
        await fits(page, 390)
        html.append(await page.content())
        if SCREENSHOTS:
            await page.screenshot(path=f"{SCREENSHOTS}/phone-{name}.png", full_page=True)
    if SCREENSHOTS:
        wide = await browser.new_context(viewport={"width": 1100, "height": 900})
        desk = await wide.new_page()
        await sign_in(desk, stack, CREDENTIAL)
        for name, url in tour[1:]:
            await desk.goto(url)
            await desk.screenshot(path=f"{SCREENSHOTS}/{name}.png", full_page=True)
        await wide.close()
    for page_html in html:
        for secret in (APP_SECRET, "sig-key-123", USER_SECRET, ORG_SECRET, created["token"]):
            assert secret not in page_html
    await context.close()
