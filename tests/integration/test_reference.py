"""`/` leads to the console and the docs; `/docs` has its own CSP; the OpenAPI document names
the Authorization header on the authenticated routes and on no other."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from relaybox.app import create_app
from relaybox.config import Settings


@pytest.fixture
async def http(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(data_dir=tmp_path), workers=False)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://relaybox") as http,
    ):
        yield http


async def test_root_leads_to_console_and_docs(http: httpx.AsyncClient) -> None:
    links = (await http.get("/")).json()
    assert links["console"] == "/ui/" and links["docs"] == "/docs"
    page = await http.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 200
    assert 'href="/ui/"' in page.text and 'href="/docs"' in page.text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")


async def test_docs_page_and_assets_are_served_here(http: httpx.AsyncClient) -> None:
    page = await http.get("/docs")
    assert page.status_code == 200
    csp = page.headers["content-security-policy"]
    assert "script-src 'self';" in csp and "connect-src 'self';" in csp
    assert "http" not in page.text.replace('charset="utf-8"', "")  # no URL of another origin
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        assert (await http.get(asset)).status_code == 200, asset
    assert (await http.get("/docs/start.js")).headers["content-type"].startswith("text/javascript")
    assert (await http.get("/redoc")).status_code == 404  # ReDoc came from a CDN


async def test_authorization_scheme_on_authenticated_routes(http: httpx.AsyncClient) -> None:
    document = (await http.get("/openapi.json")).json()
    scheme = document["components"]["securitySchemes"]["Authorization"]
    assert scheme["type"] == "apiKey" and scheme["in"] == "header"
    assert scheme["name"] == "Authorization"
    assert "User <secret>, Organization <secret>[, Element <token>]" in scheme["description"]
    paths = document["paths"]
    secured = {"security": [{"Authorization": []}]}
    assert secured.items() <= paths["/elements/api-v2/instances"]["post"].items()
    assert secured.items() <= paths["/elements/api-v2/instances/events"]["get"].items()
    for open_route in ("/healthz", "/elements/api-v2/elements/{element_key}/oauth/url"):
        assert "security" not in paths[open_route]["get"], open_route
