"""Instances as an Open Connectors client creates, reads, updates and deletes them.

Runs on SQLite and PostgreSQL (the `database_url` fixture).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.compat.anchor import (
    MASK,
    PLATFORM,
    bearer_log,
    create,
    created,
    instance_body,
)
from tests.support.stack import APP_KEY, APP_SECRET, OAUTH_CALLBACK, running_stack


def same_value(stored: Any, sent: Any) -> bool:
    """The anchor keeps configuration values as strings (churros compares `propertyValue`
    with 'true'); accept the value as sent or its string form."""
    if stored == sent:
        return True
    text = sent if isinstance(sent, str) else json.dumps(sent)
    if isinstance(sent, bool):
        text = "true" if sent else "false"
    if isinstance(stored, str):
        try:
            return stored == text or json.loads(stored) == sent
        except ValueError:
            return False
    return False


async def test_create_with_the_documented_body(tmp_path: Path, database_url: str) -> None:
    """POST /instances with the body and header of devportal
    _includes/Elements/dropbox/authenticate.md ("Example cURL"); the answer carries `id` and
    `token` ("Note the Token and ID") and the fields of "Example Response for an Authenticated
    Element Instance" (docs/elements/dropbox/authenticate.md)."""
    async with running_stack(tmp_path, database_url) as stack:
        answer = await create(stack, await stack.new_account("doc@example.com"))
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert isinstance(body["id"], int)
        assert isinstance(body["token"], str) and body["token"]
        assert body["name"] == "API Instance"
        assert body["element"]["key"] == "dropbox"
        assert body["valid"] is True
        assert body["disabled"] is False
        assert body["eventsEnabled"] is False
        assert body["tags"] == ["Test"]
        assert isinstance(body["configuration"], dict)
        assert isinstance(body["createdDate"], str)


async def test_create_with_the_documented_events_body(tmp_path: Path, database_url: str) -> None:
    """devportal _includes/Elements/dropbox/events.md "Example JSON with Webhooks": the
    event keys in `configuration` turn events on (`eventsEnabled: true`)."""
    async with running_stack(tmp_path, database_url) as stack:
        body = await created(
            stack, await stack.new_account("ev@example.com"), events_to=stack.callback_url
        )
        assert body["eventsEnabled"] is True
        assert body["configuration"]["event.notification.callback.url"] == stack.callback_url
        assert body["configuration"]["event.notification.signature.key"] == MASK


async def test_answer_carries_user_and_element(tmp_path: Path, database_url: str) -> None:
    """churros src/test/platform/elements/assets/element.instance.schema.json requires `id`,
    `name`, `token`, `valid`, `tags` and `user` {`id` (number), `emailAddress`, `firstName`,
    `lastName`}; devportal docs/elements/dropbox/authenticate.md shows `element` {`id`,
    `name`, `key`}; devportal _includes/Elements/launchbi/authenticate.md shows `elementId`
    and the full `user`."""
    async with running_stack(tmp_path, database_url) as stack:
        body = await created(stack, await stack.new_account("user@example.com"))
        for listed in (
            body,
            (await stack.http.get(f"{stack.api}/instances/{body['id']}", headers=PLATFORM)).json(),
        ):
            user = listed["user"]
            assert isinstance(user["id"], int)
            for key in ("emailAddress", "firstName", "lastName"):
                assert isinstance(user[key], str)
            element = listed["element"]
            assert element["key"] == "dropbox"
            assert isinstance(element["id"], int)
            assert isinstance(element["name"], str) and element["name"]
            assert listed["elementId"] == element["id"]


async def test_oauth_api_key_is_masked(tmp_path: Path, database_url: str) -> None:
    """churros src/test/platform/elements/instances.js ("should support using
    filter.response.nulls config"): the create answer shows `oauth.api.key` and
    `oauth.api.secret` as `********`."""
    async with running_stack(tmp_path, database_url) as stack:
        body = await created(stack, await stack.new_account("mask@example.com"))
        assert body["configuration"]["oauth.api.key"] == MASK
        assert body["configuration"]["oauth.api.secret"] == MASK
        again = await stack.http.get(f"{stack.api}/instances/{body['id']}", headers=PLATFORM)
        assert APP_KEY not in again.text and APP_SECRET not in again.text


async def test_two_instances_with_the_same_name(tmp_path: Path, database_url: str) -> None:
    """Clients give every instance the same name: churros src/core/provisioner.js names each
    one 'churros-instance'; devportal examples all use "API Instance" (SPEC section 9)."""
    async with running_stack(tmp_path, database_url) as stack:
        one = await created(stack, await stack.new_account("a@example.com"), "churros-instance")
        two = await created(stack, await stack.new_account("b@example.com"), "churros-instance")
        assert one["id"] != two["id"] and one["token"] != two["token"]


COMMON_KEYS: dict[str, Any] = {
    # devportal _includes/common-instance-config.md
    "filter.response.nulls": "true",
    "event.notification.type": "webhook",
    # devportal docs/guides/event-management/provisioning-apis.md (an object there; churros
    # src/core/provisioner.js getPollerConfig sends it as a JSON string)
    "event.poller.configuration": {"files": {"url": "/hubs/documents/files", "idField": "id"}},
    # devportal docs/elements/pardot/events.md, churros getPollerConfig
    "event.poller.urls": "files|folders",
    # devportal _includes/Elements/Hubspot/events.md, churros getPollerConfig
    "event.objects": "files,folders",
    # devportal docs/platform-api/instances/index.md (create-instance.json for dropbox)
    "document.tagging": False,
    # any other string key (SPEC section 9)
    "my.own.setting": "kept as given",
}


async def test_common_and_unknown_configuration_keys_are_kept(
    tmp_path: Path, database_url: str
) -> None:
    """Keys the anchor documents as common to all elements (devportal
    _includes/common-instance-config.md), keys from its Dropbox example (devportal
    docs/platform-api/instances/index.md: `document.tagging`) and any other key are stored
    and echoed back."""
    async with running_stack(tmp_path, database_url) as stack:
        answer = await create(stack, await stack.new_account("keys@example.com"), **COMMON_KEYS)
        assert answer.status_code == 200, answer.text
        read = await stack.http.get(
            f"{stack.api}/instances/{answer.json()['id']}", headers=PLATFORM
        )
        for body in (answer.json(), read.json()):
            for key, sent in COMMON_KEYS.items():
                assert same_value(body["configuration"].get(key), sent), (
                    key,
                    body["configuration"],
                )


async def test_instances_under_the_element_key(tmp_path: Path, database_url: str) -> None:
    """cloud-elements/sample-app-ui src/components/LoginCardsContainer/LoginCard/LoginCard.jsx
    creates with `POST elements/{elementKey}/instances`; churros
    src/test/platform/elements/instances.js ("should support CRUD by key") creates, reads,
    lists and deletes under `elements/jira/instances`."""
    async with running_stack(tmp_path, database_url) as stack:
        base = "/elements/dropbox/instances"
        made = await create(stack, await stack.new_account("k@example.com"), path=base)
        assert made.status_code == 200, made.text
        other = await created(stack, await stack.new_account("k2@example.com"), "other")
        one = await stack.http.get(f"{stack.api}{base}/{made.json()['id']}", headers=PLATFORM)
        assert one.status_code == 200 and one.json()["element"]["key"] == "dropbox"
        listed = await stack.http.get(f"{stack.api}{base}", headers=PLATFORM)
        assert listed.status_code == 200, listed.text
        assert {i["id"] for i in listed.json()} == {made.json()["id"], other["id"]}
        gone = await stack.http.delete(f"{stack.api}{base}/{made.json()['id']}", headers=PLATFORM)
        assert gone.status_code == 200, gone.text


async def test_tags_filter(tmp_path: Path, database_url: str) -> None:
    """churros src/test/platform/elements/instances.js ("should support search tags"):
    `GET instances` with `qs: {'tags[]': 'churros-instance'}` answers only tagged instances;
    churros src/core/provisioner.js getBackup calls `/instances?tags%5B%5D=churros-backup`."""
    async with running_stack(tmp_path, database_url) as stack:
        tagged = await created(
            stack, await stack.new_account("t1@example.com"), "t1", tags=["a", "b"]
        )
        only_b = await created(stack, await stack.new_account("t2@example.com"), "t2", tags=["b"])
        await created(stack, await stack.new_account("t3@example.com"), "t3", tags=[])
        for query, expected in (
            ("tags[]=a", {tagged["id"]}),
            ("tags%5B%5D=a", {tagged["id"]}),
            ("tags[]=b", {tagged["id"], only_b["id"]}),
        ):
            listed = await stack.http.get(f"{stack.api}/instances?{query}", headers=PLATFORM)
            assert listed.status_code == 200, listed.text
            assert {i["id"] for i in listed.json()} == expected, query


async def test_disable_and_enable(tmp_path: Path, database_url: str) -> None:
    """churros src/test/platform/elements/instances.js ("should allow disabling and enabling
    an instance"): `DELETE instances/{id}/enabled`, then `PUT instances/{id}/enabled`; the
    instance answer's `disabled` (devportal docs/platform-api/instances/index.md) follows."""
    async with running_stack(tmp_path, database_url) as stack:
        body = await created(stack, await stack.new_account("en@example.com"))
        url = f"{stack.api}/instances/{body['id']}"
        off = await stack.http.delete(f"{url}/enabled", headers=PLATFORM)
        assert off.status_code == 200, off.text
        assert (await stack.http.get(url, headers=PLATFORM)).json()["disabled"] is True
        on = await stack.http.put(f"{url}/enabled", headers=PLATFORM)
        assert on.status_code == 200, on.text
        assert (await stack.http.get(url, headers=PLATFORM)).json()["disabled"] is False


async def test_configuration_by_id(tmp_path: Path, database_url: str) -> None:
    """churros src/test/platform/elements/instances.js ("should support updating the
    configuration for an element instance"): `GET /instances/{id}/configuration` lists
    `{id, key, propertyValue}`; `PATCH /instances/{id}/configuration/{configId}` with the
    item and `propertyValue: 'true'`; `GET .../configuration/{configId}` answers 'true'.
    Credentials read back masked (same file, filter.response.nulls test)."""
    async with running_stack(tmp_path, database_url) as stack:
        body = await created(stack, await stack.new_account("cfg@example.com"))
        base = f"{stack.api}/instances/{body['id']}/configuration"
        listed = await stack.http.get(base, headers=PLATFORM)
        assert listed.status_code == 200, listed.text
        items = {item["key"]: item for item in listed.json()}
        assert items["oauth.api.key"]["propertyValue"] == MASK
        assert items["oauth.api.secret"]["propertyValue"] == MASK
        item = items["event.notification.enabled"]
        changed = await stack.http.patch(
            f"{base}/{item['id']}",
            json={**item, "propertyValue": "true"},
            headers=PLATFORM,
        )
        assert changed.status_code == 200, changed.text
        again = await stack.http.get(f"{base}/{changed.json()['id']}", headers=PLATFORM)
        assert again.status_code == 200 and again.json()["propertyValue"] == "true"


async def test_callback_url_set_by_configuration_id_receives_events(
    tmp_path: Path, database_url: str
) -> None:
    """devportal docs/guides/event-management/index.md ("Receiving Events"): "To update an
    active instance use the PATCH /instances or PATCH
    /instances/{id}/configuration/{configurationId} endpoints to add an Event Notification
    Callback URL"."""
    async with running_stack(tmp_path, database_url) as stack:
        account = await stack.new_account("late@example.com")
        body = await created(stack, account)
        base = f"{stack.api}/instances/{body['id']}/configuration"
        listed = await stack.http.get(base, headers=PLATFORM)
        assert listed.status_code == 200, listed.text
        items = {item["key"]: item for item in listed.json()}
        for key, value in (
            ("event.notification.callback.url", stack.callback_url),
            ("event.notification.enabled", "true"),
        ):
            item = items[key]
            patched = await stack.http.patch(
                f"{base}/{item['id']}", json={**item, "propertyValue": value}, headers=PLATFORM
            )
            assert patched.status_code == 200, patched.text
        await stack.upload(account, "/after.txt", b"new")
        await stack.receiver.wait_for(lambda r: len(r.events()) >= 1)


@pytest.mark.parametrize("method", ["PUT", "PATCH"])
async def test_reprovision_with_a_new_code(tmp_path: Path, database_url: str, method: str) -> None:
    """churros src/test/platform/elements/instances.js (updateInstanceWithReprovision): after
    a fresh OAuth code (`provisioner.partialOauth`), `PUT /instances/{id}` with the whole
    instance body and `providerData.code`, or `PATCH /instances/{id}` with `{name,
    providerData: {code}}`, answers 200 and later calls work. Here the instance's old tokens
    are then revoked at Dropbox, so a change is delivered only if the new ones are used."""
    wrap, log = bearer_log()
    async with running_stack(tmp_path, database_url, wrap_sandbox=wrap) as stack:
        account = await stack.new_account("re@example.com")
        body = await created(stack, account, events_to=stack.callback_url)
        tokens = stack.sandbox_app.state.sandbox.tokens
        old_access, old_refresh = set(tokens.access), set(tokens.refresh)
        calls_before = len(log().calls)
        code = await stack.authorize_in_browser(account)
        if method == "PUT":
            update: dict[str, Any] = instance_body(
                code, "updated-instance", events_to=stack.callback_url
            )
        else:
            update = {"name": "updated-instance", "providerData": {"code": code}}
        answer = await stack.http.request(
            method, f"{stack.api}/instances/{body['id']}", json=update, headers=PLATFORM
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["valid"] is True
        assert answer.json()["name"] == "updated-instance"
        new_access = set(tokens.access) - old_access
        assert new_access, "the new code was not exchanged"
        for token in old_access:
            tokens.access[token].revoked = True
        for token in old_refresh:
            tokens.refresh[token].revoked = True

        await stack.upload(account, "/after-reprovision.txt", b"x")
        await stack.receiver.wait_for(lambda r: len(r.events()) >= 1)
        later = log().calls[calls_before:]
        used = {token for path, token in later if path == "/2/files/list_folder/continue"}
        assert used and used <= set(tokens.access) - old_access
        read = await stack.http.get(f"{stack.api}/instances/{body['id']}", headers=PLATFORM)
        assert read.json()["valid"] is True


async def test_oauth_url_without_credentials(tmp_path: Path, database_url: str) -> None:
    """devportal _includes/Elements/dropbox/authenticate.md ("Getting a Redirect URL", Example
    cURL) calls `GET /elements/dropbox/oauth/url?apiKey=&apiSecret=&callbackUrl=&state=`
    with no Authorization header and reads `oauthUrl` (and `element`) from the answer."""
    async with running_stack(tmp_path, database_url) as stack:
        answer = await stack.http.get(
            f"{stack.api}/elements/dropbox/oauth/url",
            params={
                "apiKey": APP_KEY,
                "apiSecret": APP_SECRET,
                "callbackUrl": OAUTH_CALLBACK,
                "state": "dropbox",
            },
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["element"] == "dropbox"
        assert "client_id=" + APP_KEY in answer.json()["oauthUrl"]


async def test_oauth_url_with_credentials(tmp_path: Path, database_url: str) -> None:
    """cloud-elements/sample-app-ui LoginCard.jsx (oauthRedirectSend) calls the same URL with
    `User, Organization` and redirects the browser to `oauthUrl`."""
    async with running_stack(tmp_path, database_url) as stack:
        answer = await stack.http.get(
            f"{stack.api}/elements/dropbox/oauth/url",
            params={"apiKey": APP_KEY, "apiSecret": APP_SECRET, "callbackUrl": OAUTH_CALLBACK},
            headers=PLATFORM,
        )
        assert answer.status_code == 200, answer.text
        assert answer.json()["oauthUrl"].startswith(stack.sandbox)


async def test_error_body(tmp_path: Path, database_url: str) -> None:
    """devportal _includes/error-codes.md: an error is `{"message", "requestId"}`; 404 for a
    resource not found."""
    async with running_stack(tmp_path, database_url) as stack:
        missing = await stack.http.get(f"{stack.api}/instances/424242", headers=PLATFORM)
        assert missing.status_code == 404
        assert missing.json()["message"] and missing.json()["requestId"]


async def test_refused_code_names_the_provider_message(tmp_path: Path, database_url: str) -> None:
    """devportal _includes/error-codes.md: when the provider refused, the body carries the
    provider's own words in `providerMessage` beside `message` and `requestId`."""
    async with running_stack(tmp_path, database_url) as stack:
        answer = await stack.http.post(
            f"{stack.api}/instances", json=instance_body("not-a-real-code"), headers=PLATFORM
        )
        assert answer.status_code == 400, answer.text
        body = answer.json()
        assert body["message"] and body["requestId"]
        assert "invalid_grant" in body["providerMessage"]
