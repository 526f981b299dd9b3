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


async def test_every_operation_documents_its_answers(http: httpx.AsyncClient) -> None:
    """Typed answers and errors for a generated client: every platform operation names its
    answer's schema and each error status with the error body; input errors are 400, so no
    operation documents FastAPI's 422; `POST /instances` has its body's schema."""
    document = (await http.get("/openapi.json")).json()
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for path, operations in document["paths"].items():
        if not path.startswith("/elements/api-v2"):
            continue
        for method, operation in operations.items():
            where = f"{method.upper()} {path}"
            responses = operation["responses"]
            assert "422" not in responses, where
            assert {"400", "500"} <= responses.keys(), where
            if "{" in path:
                assert "404" in responses, where
            if "security" in operation:
                assert {"401", "429"} <= responses.keys(), where
            for status, answer in responses.items():
                if status.startswith(("4", "5")):
                    assert answer["content"]["application/json"]["schema"] == error, where
            if "requestBody" in operation:
                assert "413" in responses, where
            ok = responses["200"].get("content", {})
            webhook = path.startswith("/elements/api-v2/events/") and method == "post"
            assert method == "delete" or webhook or ok, where  # these answer no body
    body = document["paths"]["/elements/api-v2/instances"]["post"]["requestBody"]
    variants = body["content"]["application/json"]["schema"]["anyOf"]
    names = {variant["$ref"].rsplit("/", 1)[1] for variant in variants}
    assert names == {"OAuth2InstanceCreate", "ApiKeyInstanceCreate"}
    schemas = document["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    assert schemas["OAuth2Configuration"]["required"] == ["oauth.api.key", "oauth.api.secret"]
    assert schemas["OAuth2Configuration"]["additionalProperties"]  # other keys are kept
    instance = schemas["Instance"]["properties"]
    assert {"id", "token", "element", "configuration", "user"} <= instance.keys()
