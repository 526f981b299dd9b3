"""The sandbox's front door: Host names (DNS rebinding), cross-site browsers, its token."""

from collections.abc import AsyncIterator

import httpx
import pytest
from starlette.applications import Starlette

from relaybox.sandbox.access import AccessPolicy
from relaybox.sandbox.app import create_app

TOKEN = "s3cret-sandbox-token"
APP = {"app_key": "k", "app_secret": "s"}


@pytest.fixture
def app() -> Starlette:
    return create_app(access=AccessPolicy())  # on loopback, no token


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8010") as c:
        yield c


def apps(app: Starlette) -> list[str]:
    return sorted(app.state.sandbox.apps)


@pytest.mark.parametrize("host", ["127.0.0.1:8010", "localhost:8010", "[::1]:8010", "127.0.0.1"])
async def test_loopback_host_names_are_served(client: httpx.AsyncClient, host: str) -> None:
    answer = await client.get("/_sandbox/accounts", headers={"Host": host})
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    "host", ["rebind.attacker.example:8010", "attacker.example", "127.0.0.1.nip.io:8010", ""]
)
async def test_a_host_name_it_is_not_served_on_is_refused(
    app: Starlette, client: httpx.AsyncClient, host: str
) -> None:
    """DNS rebinding: a page whose name now resolves to 127.0.0.1 still sends its own name."""
    created = await client.post("/_sandbox/apps", json=APP, headers={"Host": host})
    assert created.status_code == 403
    assert created.json() == {"error": "host: this sandbox does not answer for it"}
    listed = await client.get("/_sandbox/webhooks/log", headers={"Host": host})
    assert listed.status_code == 403
    dropbox = await client.post("/2/users/get_current_account", headers={"Host": host})
    assert dropbox.status_code == 403
    assert apps(app) == []


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "http://attacker.example"},
        {"Origin": "http://127.0.0.1:3000"},  # another local origin is another site
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
    ],
)
async def test_cross_site_browser_requests_that_change_state_are_refused(
    app: Starlette, client: httpx.AsyncClient, headers: dict[str, str]
) -> None:
    created = await client.post("/_sandbox/apps", json=APP, headers=headers)
    assert created.status_code == 403
    assert created.json() == {"error": "origin: cross-site requests are refused"}
    form = await client.post("/_sandbox/ui/accounts", data={"email": "x@y.io"}, headers=headers)
    assert form.status_code == 403
    assert apps(app) == [] and app.state.sandbox.accounts == {}


async def test_same_origin_browsers_and_plain_clients_are_served(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    same = {"Origin": "http://127.0.0.1:8010", "Sec-Fetch-Site": "same-origin"}
    assert (await client.post("/_sandbox/apps", json=APP, headers=same)).status_code == 200
    form = await client.post("/_sandbox/ui/accounts", data={"email": "x@y.io"}, headers=same)
    assert form.status_code == 303  # the files page's own forms still work
    assert (await client.post("/_sandbox/accounts", json={"email": "z@y.io"})).status_code == 200
    assert apps(app) == ["k"] and len(app.state.sandbox.accounts) == 2


@pytest.mark.parametrize(
    "content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data", None]
)
async def test_a_control_post_must_be_json(
    app: Starlette, client: httpx.AsyncClient, content_type: str | None
) -> None:
    """The bodies a page may send cross-site without a preflight are refused."""
    body = b'{"app_key": "k", "app_secret": "s", "webhook_uri": "http://127.0.0.1:9/"}'
    headers = {"Content-Type": content_type} if content_type else {}
    answer = await client.post("/_sandbox/apps", content=body, headers=headers)
    assert answer.status_code == 415
    assert answer.json() == {"error": "content-type: send application/json"}
    assert apps(app) == []


@pytest.fixture
async def guarded() -> AsyncIterator[tuple[Starlette, httpx.AsyncClient]]:
    app = create_app(access=AccessPolicy(token=TOKEN))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://127.0.0.1:8010") as c:
        yield app, c


@pytest.mark.parametrize("authorization", [None, "Bearer wrong", f"Basic {TOKEN}", "Bearer "])
async def test_with_a_token_the_control_api_refuses_requests_without_it(
    guarded: tuple[Starlette, httpx.AsyncClient], authorization: str | None
) -> None:
    app, client = guarded
    headers = {"Authorization": authorization} if authorization else {}
    created = await client.post("/_sandbox/apps", json=APP, headers=headers)
    assert created.status_code == 401
    assert created.headers["www-authenticate"].startswith("Bearer")
    assert (await client.get("/_sandbox/webhooks/log", headers=headers)).status_code == 401
    assert apps(app) == []


async def test_with_a_token_the_control_api_serves_its_bearer(
    guarded: tuple[Starlette, httpx.AsyncClient],
) -> None:
    app, client = guarded
    bearer = {"Authorization": f"Bearer {TOKEN}"}
    assert (await client.post("/_sandbox/apps", json=APP, headers=bearer)).status_code == 200
    assert (await client.get("/_sandbox/webhooks/log", headers=bearer)).json() == {"entries": []}
    assert apps(app) == ["k"]
    # Dropbox's own routes keep Dropbox's authentication (its OAuth tokens), not this one
    dropbox = await client.post("/2/users/get_current_account")
    assert dropbox.status_code == 400 and "Authorization" in dropbox.text


async def test_the_files_page_takes_the_token_once_and_keeps_it_in_a_cookie(
    guarded: tuple[Starlette, httpx.AsyncClient],
) -> None:
    _, client = guarded
    assert (await client.get("/_sandbox/ui")).status_code == 401
    assert (await client.get("/_sandbox/ui", params={"token": "wrong"})).status_code == 401
    opened = await client.get("/_sandbox/ui", params={"token": TOKEN, "account_id": "a"})
    assert opened.status_code == 303
    assert opened.headers["location"] == "/_sandbox/ui?account_id=a"  # the token leaves the URL
    cookie = opened.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/_sandbox/ui" in cookie
    assert (await client.get("/_sandbox/ui")).status_code == 200  # the client kept the cookie
    created = await client.post("/_sandbox/ui/accounts", data={"email": "x@y.io"})
    assert created.status_code == 303
    # the cookie opens the page, not the JSON control API
    assert (await client.get("/_sandbox/accounts")).status_code == 401
