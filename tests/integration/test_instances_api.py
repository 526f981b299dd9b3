"""The platform API's surface: credentials, the OAuth URL helper, clear 400s for bad input."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.support.stack import (
    APP_KEY,
    AUTH,
    OAUTH_CALLBACK,
    ORG_SECRET,
    USER_SECRET,
    Stack,
    running_stack,
)


@pytest.fixture
async def stack(tmp_path: Path) -> Any:
    async with running_stack(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'api.db'}") as running:
        yield running


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer abc"},
        {"Authorization": f"User wrong, Organization {ORG_SECRET}"},
        {"Authorization": f"User {USER_SECRET}, Organization wrong"},
        {"Authorization": f"User {USER_SECRET}"},
        {"Authorization": f"User {USER_SECRET}, Element not-a-token"},
    ],
)
async def test_calls_without_valid_credentials_get_401(
    stack: Stack, headers: dict[str, str]
) -> None:
    for method, path in (
        ("GET", "/instances"),
        ("POST", "/instances"),
        ("GET", "/instances/1"),
        ("GET", "/instances/events"),
        ("DELETE", "/instances/1"),
    ):
        answer = await stack.http.request(method, f"{stack.api}{path}", headers=headers, json={})
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.json()["message"]
        assert answer.json()["requestId"]


async def test_oauth_url_points_at_the_authorize_page(stack: Stack) -> None:
    answer = await stack.http.get(
        f"{stack.api}/elements/dropbox/oauth/url",
        params={"apiKey": APP_KEY, "apiSecret": "s", "callbackUrl": OAUTH_CALLBACK, "state": "st"},
        headers=AUTH,
    )
    assert answer.status_code == 200
    body = answer.json()
    assert body["element"] == "dropbox"
    url = urlsplit(body["oauthUrl"])
    assert f"{url.scheme}://{url.netloc}" == stack.sandbox
    assert url.path == "/oauth2/authorize"
    assert parse_qs(url.query) == {
        "client_id": [APP_KEY],
        "response_type": ["code"],
        "token_access_type": ["offline"],
        "redirect_uri": [OAUTH_CALLBACK],
        "state": ["st"],
    }
    missing = await stack.http.get(f"{stack.api}/elements/dropbox/oauth/url", headers=AUTH)
    assert missing.status_code == 400 and "apiKey" in missing.json()["message"]


def create_body(code: str, **config: Any) -> dict[str, Any]:
    configuration = {
        "oauth.api.key": APP_KEY,
        "oauth.api.secret": "test-app-secret",
        "oauth.callback.url": OAUTH_CALLBACK,
        **config,
    }
    return {
        "element": {"key": "dropbox"},
        "providerData": {"code": code},
        "configuration": configuration,
        "name": "x",
    }


@pytest.mark.parametrize(
    ("change", "field"),
    [
        (lambda b: b.pop("name"), "name"),
        (lambda b: b.update(element={"key": "gdrive"}), "element.key"),
        (lambda b: b["configuration"].pop("oauth.api.key"), "oauth.api.key"),
        (
            lambda b: b["configuration"].update({"event.notification.enabled": True}),
            "event.notification.callback.url",
        ),
        (
            lambda b: b["configuration"].update({"event.notification.enabled": "maybe"}),
            "event.notification.enabled",
        ),
        (
            lambda b: b["configuration"].update({"event.notification.callback.url": "ftp://x/"}),
            "event.notification.callback.url",
        ),
        (
            lambda b: b["configuration"].update({"event.vendor.type": "carrier-pigeon"}),
            "event.vendor.type",
        ),
        (
            lambda b: b["configuration"].update({"event.poller.refresh_interval": "soon"}),
            "event.poller.refresh_interval",
        ),
        (lambda b: b.update(tags="a"), "tags"),
        (lambda b: b.update(providerData={}), "providerData.code"),
        (lambda b: b.update(configuration=[]), "configuration"),
    ],
)
async def test_bad_input_is_a_400_naming_the_field(stack: Stack, change: Any, field: str) -> None:
    body = create_body("some-code")
    change(body)
    answer = await stack.http.post(f"{stack.api}/instances", json=body, headers=AUTH)
    assert answer.status_code == 400, answer.text
    assert field in answer.json()["message"]


async def test_refused_code_is_a_400_and_stores_nothing(stack: Stack) -> None:
    answer = await stack.http.post(
        f"{stack.api}/instances", json=create_body("not-a-real-code"), headers=AUTH
    )
    assert answer.status_code == 400
    assert "invalid_grant" in answer.json()["message"]
    listed = await stack.http.get(f"{stack.api}/instances", headers=AUTH)
    assert listed.json() == []


async def test_not_json_and_unknown_instances(stack: Stack) -> None:
    answer = await stack.http.post(f"{stack.api}/instances", content=b"{", headers=AUTH)
    assert answer.status_code == 400 and "JSON" in answer.json()["message"]
    missing = await stack.http.get(f"{stack.api}/instances/999", headers=AUTH)
    assert missing.status_code == 404


async def test_duplicate_name_is_allowed_and_delete_revokes(stack: Stack) -> None:
    """SPEC section 9: names are not unique (a second instance named alike was a 409)."""
    account = await stack.new_account("lin@example.com")
    created = await stack.connect(account, "dup")
    again = await stack.authorize_in_browser(account)
    body = create_body(again)
    body["name"] = "dup"
    answer = await stack.http.post(f"{stack.api}/instances", json=body, headers=AUTH)
    assert answer.status_code == 200 and answer.json()["id"] != created["id"]
    for instance_id in (created["id"], answer.json()["id"]):
        deleted = await stack.http.delete(f"{stack.api}/instances/{instance_id}", headers=AUTH)
        assert deleted.status_code == 200
        gone = await stack.http.get(f"{stack.api}/instances/{instance_id}", headers=AUTH)
        assert gone.status_code == 404
    tokens = stack.sandbox_app.state.sandbox.tokens
    assert tokens.access and all(
        t.revoked for t in tokens.access.values() if t.account_id == account
    )


async def test_instance_token_reaches_only_its_instance(stack: Stack) -> None:
    first = await stack.connect(await stack.new_account("a@example.com"), "first")
    second = await stack.connect(await stack.new_account("b@example.com"), "second")
    element_auth = {"Authorization": f"User {USER_SECRET}, Element {first['token']}"}
    mine = await stack.http.get(f"{stack.api}/instances/{first['id']}", headers=element_auth)
    assert mine.status_code == 200
    other = await stack.http.get(f"{stack.api}/instances/{second['id']}", headers=element_auth)
    assert other.status_code == 404
    listed = await stack.http.get(f"{stack.api}/instances", headers=element_auth)
    assert [i["id"] for i in listed.json()] == [first["id"]]


@pytest.mark.parametrize(
    ("method", "path", "content"),
    [
        ("GET", "/instances/99999999999999999999", None),
        ("GET", "/instances/0", None),
        ("GET", "/instances/events/99999999999999999999", None),
        ("GET", "/instances/events?nextPage=aWQ6OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5", None),
        ("GET", "/instances/events?pageSize=100000", None),
        ("POST", "/instances", b"[" * 200_000),
        ("PATCH", "/instances/1", b'{"tags": "x"' + b"}" * 5),
        ("PUT", "/instances/1/events/subscription", b'{"active": "perhaps"}'),
        ("POST", "/instances", b'{"name": ' + b"1" * 5000 + b"}"),
    ],
)
async def test_hostile_input_is_a_400_never_a_500(
    stack: Stack, method: str, path: str, content: bytes | None
) -> None:
    answer = await stack.http.request(method, f"{stack.api}{path}", content=content, headers=AUTH)
    assert answer.status_code in (400, 404), answer.text
    assert answer.json()["message"]


@pytest.mark.parametrize(
    "since", ["0001-01-01T00:00:00+14:00", "9999-12-31T23:59:59-14:00", "0001-01-01T00:00:00Z"]
)
async def test_a_since_past_the_calendar_in_utc_is_still_a_time(stack: Stack, since: str) -> None:
    """Valid date-times whose UTC form falls outside years 1-9999 are answered, not refused
    (the OpenAPI document calls them valid): the earliest or latest time there is."""
    for path in ("/instances/events", "/instances/1/deliveries/redeliver"):
        method = "POST" if path.endswith("redeliver") else "GET"
        answer = await stack.http.request(
            method, f"{stack.api}{path}", params={"since": since}, headers=AUTH
        )
        assert answer.status_code in (200, 404), answer.text  # no instance 1 here


async def test_invalid_whsec_signature_key_is_refused(stack: Stack) -> None:
    code = await stack.authorize_in_browser(await stack.new_account("w@example.com"))
    body = create_body(code, **{"event.notification.signature.key": "whsec_not base64!"})
    answer = await stack.http.post(f"{stack.api}/instances", json=body, headers=AUTH)
    assert answer.status_code == 400
    assert "event.notification.signature.key" in answer.json()["message"]


async def test_enabling_events_starts_from_now(stack: Stack) -> None:
    account = await stack.new_account("later@example.com")
    code = await stack.authorize_in_browser(account)
    created = await stack.http.post(f"{stack.api}/instances", json=create_body(code), headers=AUTH)
    assert created.status_code == 200 and created.json()["eventsEnabled"] is False
    await stack.upload(account, "/before.txt", b"made while events were off")
    enabled = await stack.http.patch(
        f"{stack.api}/instances/{created.json()['id']}",
        json={
            "configuration": {
                "event.notification.enabled": "true",
                "event.notification.callback.url": stack.callback_url,
            }
        },
        headers=AUTH,
    )
    assert enabled.status_code == 200 and enabled.json()["eventsEnabled"] is True
    await stack.upload(account, "/before.txt", b"edited after")
    await stack.upload(account, "/after.txt", b"new")
    await stack.receiver.wait_for(lambda r: len(r.events()) >= 2)
    assert [(e["eventType"], e["path"]) for e in stack.receiver.events()] == [
        ("UPDATED", "/before.txt"),
        ("CREATED", "/after.txt"),
    ]
