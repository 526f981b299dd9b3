"""`/docs` in a real browser with no network beyond relaybox itself: Swagger UI comes from the
files installed with the package, lists the operations, and its Authorize dialog opens and
sets the Authorization header.

Every request to another origin is refused (`page.route`) and recorded: a CDN asset would
show up there, and the page would not render.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from playwright.async_api import Browser, ConsoleMessage, Request, Route, expect

from relaybox.app import create_app
from relaybox.config import Settings
from tests.browser.test_console import browser  # the chromium fixture, and its skip
from tests.support.servers import serving
from tests.support.stack import AUTH, ORG_SECRET, USER_SECRET

__all__ = ["browser"]


@pytest.fixture
async def relaybox(tmp_path: Path) -> AsyncIterator[str]:
    settings = Settings(
        data_dir=tmp_path,
        bootstrap_user_secret=USER_SECRET,
        bootstrap_org_secret=ORG_SECRET,
    )
    async with serving(create_app(settings, workers=False)) as url:
        yield url


async def test_docs_render_offline_and_authorize(browser: Browser, relaybox: str) -> None:
    context = await browser.new_context()
    page = await context.new_page()
    refused: list[str] = []
    sent: list[Request] = []
    problems: list[str] = []

    async def only_relaybox(route: Route) -> None:
        if route.request.url.startswith(relaybox + "/"):
            await route.continue_()
        else:
            refused.append(route.request.url)
            await route.abort()

    def console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(message.text)

    await page.route("**/*", only_relaybox)
    page.on("request", lambda request: sent.append(request))
    page.on("console", console)

    await page.goto(f"{relaybox}/docs")
    await expect(page.locator(".opblock").first).to_be_visible(timeout=20_000)
    await expect(page.get_by_text("/elements/api-v2/instances", exact=True).first).to_be_visible()
    assert await page.locator(".opblock").count() > 20

    await page.locator("button.authorize").first.click()
    dialog = page.locator(".modal-ux")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("Authorization (apiKey)")
    await expect(dialog).to_contain_text("Organization <secret>")
    await dialog.locator("input").first.fill(AUTH["Authorization"])
    await dialog.locator("button.modal-btn.authorize").click()
    await expect(dialog).to_contain_text("Authorized")
    await dialog.locator("button.btn-done").click()

    # "Try it out" on GET /instances: the header set in the dialog goes with the call.
    listing = page.locator("#operations-instances-list_instances_elements_api_v2_instances_get")
    await listing.locator(".opblock-summary").click()
    await listing.get_by_role("button", name="Try it out").click()
    instances = f"{relaybox}/elements/api-v2/instances"
    async with page.expect_response(lambda r: r.url == instances) as got:
        await listing.get_by_role("button", name="Execute").click()
    answer = await got.value
    assert answer.status == 200
    assert await answer.request.header_value("authorization") == AUTH["Authorization"]
    assert json.loads(await answer.text()) == []

    assert refused == [], "the docs page asked for something beyond relaybox"
    assert all(r.url.startswith(relaybox) for r in sent)
    assert not [p for p in problems if "Content Security Policy" in p], problems
    await context.close()
