"""SPEC 9's instance endpoints beyond what tests/compat shows: enabling and disabling stops
passes and deliveries, configuration one key at a time (bounds, masks, ids), the instance
answer's `user`, the list by element id. Runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from pathlib import Path

from relaybox.core.instance_config import MASK, MAX_KEYS, config_id
from relaybox.runtime import Runtime
from relaybox.services.orgs import create_user
from tests.support.stack import APP_SECRET, AUTH, ORG_SECRET, running_stack


async def test_a_disabled_instance_gets_no_passes_and_no_deliveries(
    tmp_path: Path, database_url: str
) -> None:
    async with running_stack(tmp_path, database_url, retry_schedule="1") as stack:
        account = await stack.new_account("off@example.com")
        instance = await stack.connect(account, "same name")
        url = f"{stack.api}/instances/{instance['id']}"

        # A notification that failed once waits for its retry; disabling holds it back.
        stack.receiver.statuses = [500]
        await stack.upload(account, "/first.txt", b"1")
        await stack.receiver.wait_for(lambda r: len(r.answered) == 1)
        off = await stack.http.delete(f"{url}/enabled", headers=AUTH)
        assert off.status_code == 200 and off.json()["disabled"] is True
        # No pass either: a change made while disabled is not fetched.
        await stack.upload(account, "/second.txt", b"2")
        await asyncio.sleep(2.5)
        assert len(stack.receiver.answered) == 1
        assert (await stack.http.get(url, headers=AUTH)).json()["disabled"] is True

        on = await stack.http.put(f"{url}/enabled", headers=AUTH)
        assert on.status_code == 200 and on.json()["disabled"] is False
        held = stack.receiver.answered[0][0]
        await stack.receiver.wait_for(
            lambda r: (held, 200) in r.answered and "/second.txt" in {e["path"] for e in r.events()}
        )


async def test_configuration_one_key_at_a_time(tmp_path: Path, database_url: str) -> None:
    async with running_stack(tmp_path, database_url) as stack:
        account = await stack.new_account("cfg@example.com")
        instance = await stack.connect(account, "cfg", **{"my.own": "x"})
        base = f"{stack.api}/instances/{instance['id']}/configuration"
        items = {i["key"]: i for i in (await stack.http.get(base, headers=AUTH)).json()}
        assert items["my.own"] == {
            "id": config_id("my.own"),
            "key": "my.own",
            "name": "my.own",
            "propertyValue": "x",
        }
        assert items["event.notification.signature.key"]["propertyValue"] == MASK

        # A secret set this way is never read back; a mask sent back changes nothing.
        secret_id = config_id("event.notification.signature.key")
        for value in ("new-signing-key", MASK):
            set_secret = await stack.http.patch(
                f"{base}/{secret_id}", json={"propertyValue": value}, headers=AUTH
            )
            assert set_secret.status_code == 200, set_secret.text
            assert set_secret.json()["propertyValue"] == MASK
        read = await stack.http.get(f"{stack.api}/instances/{instance['id']}", headers=AUTH)
        assert "new-signing-key" not in read.text and APP_SECRET not in read.text
        await stack.upload(account, "/signed.txt", b"s")
        await stack.receiver.wait_for(lambda r: len(r.events()) >= 1)
        assert stack.receiver.received[-1].headers["elements-webhook-signature"]

        refusals = [
            (f"{base}/{config_id('my.own')}", {}, "propertyValue"),
            (f"{base}/{config_id('my.own')}", {"key": "other", "propertyValue": "1"}, "key"),
            (f"{base}/{secret_id}", {"propertyValue": None}, "signature.key"),
            (
                f"{base}/{config_id('event.notification.callback.url')}",
                {"propertyValue": "ftp://x/"},
                "event.notification.callback.url",
            ),
            (f"{base}/{config_id('my.own')}", {"propertyValue": "v" * 5000}, "my.own"),
        ]
        for url, body, field in refusals:
            answer = await stack.http.patch(url, json=body, headers=AUTH)
            assert answer.status_code == 400, (body, answer.text)
            assert field in answer.json()["message"]
        assert (await stack.http.get(f"{base}/12345", headers=AUTH)).status_code == 404
        assert (await stack.http.get(f"{base}/{2**60}", headers=AUTH)).status_code == 400

        # null removes a key relaybox does not act on; bounds on the whole configuration.
        removed = await stack.http.patch(
            f"{base}/{config_id('my.own')}", json={"propertyValue": None}, headers=AUTH
        )
        assert removed.status_code == 200 and removed.json()["propertyValue"] is None
        too_many = {f"k{i}": "v" for i in range(MAX_KEYS)}
        answer = await stack.http.patch(
            f"{stack.api}/instances/{instance['id']}",
            json={"configuration": too_many},
            headers=AUTH,
        )
        assert answer.status_code == 400 and "configuration" in answer.json()["message"]
        long_key = await stack.http.patch(
            f"{stack.api}/instances/{instance['id']}",
            json={"configuration": {"k" * 201: "v"}},
            headers=AUTH,
        )
        assert long_key.status_code == 400 and "200" in long_key.json()["message"]


async def test_the_user_is_who_created_it_and_elements_by_id(
    tmp_path: Path, database_url: str
) -> None:
    async with running_stack(tmp_path, database_url) as stack:
        runtime = await Runtime.start(stack.settings, migrate=False)
        try:
            second = await create_user(runtime, 1, "second@example.com")  # bootstrap org
        finally:
            await runtime.close()
        first = await stack.connect(await stack.new_account("u1@example.com"), "twin")
        auth = {"Authorization": f"User {second.user_secret}, Organization {ORG_SECRET}"}
        made = await stack.connect(await stack.new_account("u2@example.com"), "twin", auth=auth)
        assert made["user"]["emailAddress"] == "second@example.com"
        assert first["user"]["emailAddress"] != "second@example.com"
        assert made["user"]["firstName"] == "" and made["element"]["name"] == "Dropbox"
        by_id = await stack.http.get(f"{stack.api}/elements/14/instances", headers=AUTH)
        assert [i["id"] for i in by_id.json()] == [first["id"], made["id"]]
        assert {i["name"] for i in by_id.json()} == {"twin"}
        nowhere = await stack.http.get(f"{stack.api}/elements/gdrive/instances", headers=AUTH)
        assert nowhere.status_code == 404
        wrong = await stack.http.post(
            f"{stack.api}/elements/dropbox/instances",
            json={"element": {"key": "box"}, "name": "x"},
            headers=AUTH,
        )
        assert wrong.status_code == 400 and "element.key" in wrong.json()["message"]
