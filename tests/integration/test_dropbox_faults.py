"""Dropbox having a bad day: expired and revoked tokens, rate limits, outages, cursor resets
and apiKey instances. Every change is still delivered, once."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

from tests.support.stack import APP_KEY, APP_SECRET, AUTH, OAUTH_CALLBACK, Stack, running_stack

CONTINUE = "/2/files/list_folder/continue"


def keys(stack: Stack) -> list[tuple[str, str, str | None]]:
    return [(e["eventType"], e["path"], e.get("newPath")) for e in stack.receiver.events()]


async def fault(stack: Stack, **body: Any) -> None:
    await stack.control("POST", "/faults", json=body)


async def step(stack: Stack, change: Any, expected: int) -> None:
    """Make one change and wait until the callback has seen `expected` events in all."""
    await change
    await stack.receiver.wait_for(lambda r: len(r.events()) >= expected)


async def get_instance(stack: Stack, instance_id: int) -> dict[str, Any]:
    answer = await stack.http.get(f"{stack.api}/instances/{instance_id}", headers=AUTH)
    return dict(answer.json())


async def test_tokens_expiring_mid_stream_are_refreshed_silently(
    tmp_path: Path, database_url: str
) -> None:
    async with running_stack(tmp_path, database_url) as stack:
        account = await stack.new_account("expire@example.com")
        instance = await stack.connect(account)
        for n in range(6):
            if n in (2, 4):
                await fault(stack, route="*", status="expire_tokens", count=1)
            await step(stack, stack.upload(account, f"/f{n}.txt", b"x"), n + 1)
        assert keys(stack) == [("CREATED", f"/f{n}.txt", None) for n in range(6)]
        answer = await get_instance(stack, instance["id"])
        assert answer["valid"] is True and "statusMessage" not in answer
        refreshes = (
            [c for c in stack.sandbox_log.calls if c[2] == "/oauth2/token"]
            if stack.sandbox_log
            else []
        )
        assert len(refreshes) >= 3, "the code exchange, then one refresh per expiry"


async def test_revoked_access_makes_the_instance_invalid_until_reauthenticated(
    tmp_path: Path, database_url: str
) -> None:
    async with running_stack(tmp_path, database_url) as stack:
        account = await stack.new_account("revoked@example.com")
        instance = await stack.connect(account)
        await step(stack, stack.upload(account, "/before.txt", b"x"), 1)
        await stack.control("POST", "/tokens/revoke", json={"account_id": account})
        await stack.upload(account, "/while-1.txt", b"x")

        async def invalid() -> dict[str, Any]:
            while True:
                answer = await get_instance(stack, instance["id"])
                if answer["valid"] is False:
                    return answer
                await asyncio.sleep(0.1)

        answer = await asyncio.wait_for(invalid(), 10)
        assert answer["statusMessage"]
        await stack.upload(account, "/while-2.txt", b"x")
        await stack.move(account, "/before.txt", "/moved.txt")
        await asyncio.sleep(0.5)
        assert len(stack.receiver.events()) == 1, "nothing is fetched while invalid"

        code = await stack.authorize_in_browser(account)
        reauth = await stack.http.put(
            f"{stack.api}/instances/{instance['id']}",
            json={"providerData": {"code": code}},
            headers=AUTH,
        )
        assert reauth.status_code == 200, reauth.text
        assert reauth.json()["valid"] is True
        await stack.receiver.wait_for(lambda r: len(r.events()) >= 4)
        await asyncio.sleep(0.5)
        assert sorted(keys(stack)) == sorted(
            [
                ("CREATED", "/before.txt", None),
                ("CREATED", "/while-1.txt", None),
                ("CREATED", "/while-2.txt", None),
                ("UPDATED", "/before.txt", "/moved.txt"),
            ]
        )


async def test_rate_limit_waits_for_retry_after(tmp_path: Path, database_url: str) -> None:
    async with running_stack(tmp_path, database_url) as stack:
        assert stack.sandbox_log is not None
        account = await stack.new_account("limited@example.com")
        await stack.connect(account)
        await fault(stack, route="files/list_folder/continue", status=429, count=1, retry_after=2)
        await step(stack, stack.upload(account, "/a.txt", b"x"), 1)
        calls = stack.sandbox_log.of(CONTINUE)
        limited = [at for at, status in calls if status == 429]
        assert len(limited) == 1
        after = [at for at, status in calls if at > limited[0]]
        assert after and after[0] - limited[0] >= 2.0, "no call before Retry-After has passed"
        assert keys(stack) == [("CREATED", "/a.txt", None)]


async def test_three_server_errors_then_success(tmp_path: Path, database_url: str) -> None:
    async with running_stack(tmp_path, database_url, dropbox_retry_base=0.05) as stack:
        assert stack.sandbox_log is not None
        account = await stack.new_account("outage@example.com")
        await stack.connect(account)
        await fault(stack, route="files/list_folder/continue", status=503, count=3)
        await step(stack, stack.upload(account, "/a.txt", b"x"), 1)
        await asyncio.sleep(0.3)
        assert keys(stack) == [("CREATED", "/a.txt", None)]
        statuses = [status for _, status in stack.sandbox_log.of(CONTINUE)]
        assert statuses[:4] == [503, 503, 503, 200]


async def test_cursor_reset_mid_stream_delivers_each_change_once(
    tmp_path: Path, database_url: str
) -> None:
    async with running_stack(tmp_path, database_url) as stack:
        account = await stack.new_account("reset@example.com")
        await stack.upload(account, "/old.txt", b"from before the instance")
        await stack.connect(account)
        expected: list[tuple[str, str, str | None]] = []
        for n in range(4):
            await stack.upload(account, f"/f{n}.txt", b"x")
            expected.append(("CREATED", f"/f{n}.txt", None))
        await stack.receiver.wait_for(lambda r: len(r.events()) >= 4)
        await fault(stack, route="files/list_folder/continue", status="reset", count=1)
        await stack.upload(account, "/f0.txt", b"edited")
        await stack.move(account, "/f1.txt", "/f1-renamed.txt")
        await stack.remove(account, "/f2.txt")
        await stack.upload(account, "/f9.txt", b"new")
        expected += [
            ("UPDATED", "/f0.txt", None),
            ("UPDATED", "/f1.txt", "/f1-renamed.txt"),
            ("DELETED", "/f2.txt", None),
            ("CREATED", "/f9.txt", None),
        ]
        await stack.receiver.wait_for(lambda r: len(r.events()) >= len(expected))
        await stack.upload(account, "/f3.txt", b"after the reset")
        expected.append(("UPDATED", "/f3.txt", None))
        await stack.receiver.wait_for(lambda r: len(r.events()) >= len(expected))
        await asyncio.sleep(0.5)
        assert Counter(keys(stack)) == Counter(expected), "each change exactly once"
        assert stack.sandbox_log is not None
        assert any(status == 409 for _, status in stack.sandbox_log.of(CONTINUE))


async def test_api_key_instances(tmp_path: Path, database_url: str) -> None:
    async with running_stack(tmp_path, database_url) as stack:
        account = await stack.new_account("apikey@example.com")
        code = (
            await stack.control(
                "POST",
                "/authorize",
                json={
                    "app_key": APP_KEY,
                    "account_id": account,
                    "redirect_uri": OAUTH_CALLBACK,
                },
            )
        ).json()["code"]
        token = (
            await stack.http.post(
                f"{stack.sandbox}/oauth2/token",
                data={
                    "grant_type": "authorization_code",
                    "code": code,
                    "client_id": APP_KEY,
                    "client_secret": APP_SECRET,
                    "redirect_uri": OAUTH_CALLBACK,
                },
            )
        ).json()["access_token"]
        body = {
            "element": {"key": "dropbox"},
            "name": "api key",
            "configuration": {
                "authentication.type": "apiKey",
                "dropbox.access_token": token,
                "oauth.api.secret": APP_SECRET,
                "event.notification.enabled": True,
                "event.notification.callback.url": stack.callback_url,
            },
        }
        created = await stack.http.post(f"{stack.api}/instances", json=body, headers=AUTH)
        assert created.status_code == 200, created.text
        instance = created.json()
        assert instance["providerData"]["accountId"] == account
        assert token not in created.text
        assert instance["configuration"]["dropbox.access_token"] == "********"
        await step(stack, stack.upload(account, "/a.txt", b"x"), 1)
        assert keys(stack) == [("CREATED", "/a.txt", None)]

        await fault(stack, route="*", status="expire_tokens", count=1)
        await stack.upload(account, "/b.txt", b"x")

        async def invalid() -> dict[str, Any]:
            while (answer := await get_instance(stack, instance["id"]))["valid"]:
                await asyncio.sleep(0.1)
            return answer

        answer = await asyncio.wait_for(invalid(), 10)
        assert "expired" in answer["statusMessage"]
