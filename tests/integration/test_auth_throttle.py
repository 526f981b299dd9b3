"""Failed authentications are rate-limited per client address (relaybox/api/throttle.py)."""

from __future__ import annotations

import os
from pathlib import Path

import httpx

from relaybox.api.throttle import FAILURE_LIMIT, FAILURE_WINDOW
from tests.support.console import console_opens, session_cookie, sign_in
from tests.support.processes import Relaybox
from tests.support.servers import free_port
from tests.support.stack import AUTH, ORG_SECRET, USER_SECRET, running_stack

BAD = {"Authorization": "User wrong, Organization guess"}
CREDENTIAL = f"User {USER_SECRET}, Organization {ORG_SECRET}"


def client_from(address: str) -> httpx.AsyncClient:
    """A client whose connections come from `address` (any 127.x address is loopback)."""
    transport = httpx.AsyncHTTPTransport(local_address=address)
    return httpx.AsyncClient(transport=transport, timeout=10)


async def test_an_address_with_too_many_failures_gets_429_and_others_do_not(
    tmp_path: Path,
) -> None:
    async with running_stack(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'r.db'}") as stack:
        url = f"{stack.api}/instances"
        async with client_from("127.0.0.5") as attacker, client_from("127.0.0.6") as bystander:
            for _ in range(FAILURE_LIMIT - 1):
                assert (await attacker.get(url, headers=BAD)).status_code == 401
            for _ in range(3 * FAILURE_LIMIT):  # successes neither count nor are limited
                assert (await attacker.get(url, headers=AUTH)).status_code == 200
            for _ in range(3 * FAILURE_LIMIT):  # nor does a request without credentials
                assert (await attacker.get(url)).status_code == 401
            assert (await attacker.get(url, headers=BAD)).status_code == 401  # the last one

            blocked = await attacker.get(url, headers=BAD)
            assert blocked.status_code == 429
            assert 0 < int(blocked.headers["retry-after"]) <= FAILURE_WINDOW
            assert set(blocked.json()) == {"requestId", "message"}
            # Only failures are limited: a valid credential from the same address (the
            # users behind one proxy or NAT) is answered, in the API and the console.
            for _ in range(3):
                assert (await attacker.get(url, headers=AUTH)).status_code == 200
            cookie = await session_cookie(attacker, stack.relaybox, CREDENTIAL)
            assert await console_opens(attacker, stack.relaybox, cookie)
            element = {"Authorization": "User test-user-secret, Element nope"}
            assert (await attacker.get(f"{url}/1", headers=element)).status_code == 429
            three_part = {"Authorization": f"{CREDENTIAL}, Element nope"}
            assert (await attacker.get(f"{url}/1", headers=three_part)).status_code == 429
            wrong = await sign_in(attacker, stack.relaybox, BAD["Authorization"])
            assert wrong.status_code == 429 and "Too many failed sign-ins" in wrong.text

            assert (await bystander.get(url, headers=AUTH)).status_code == 200
            assert (await bystander.get(url, headers=BAD)).status_code == 401
            # The provider-facing receiver is not behind platform credentials at all.
            challenge = await attacker.get(
                f"{stack.api}/events/dropbox", params={"challenge": "abc"}
            )
            assert challenge.status_code == 200


async def serve(tmp_path: Path, name: str, **env: str) -> Relaybox:
    """`relaybox serve` as an operator runs it (uvicorn's options are the command's)."""
    folder = tmp_path / name
    folder.mkdir()
    environment = {
        **os.environ,
        "RELAYBOX_DATA_DIR": str(folder),
        "RELAYBOX_DATABASE_URL": f"sqlite+aiosqlite:///{folder / 'r.db'}",
        "RELAYBOX_BOOTSTRAP_USER_SECRET": USER_SECRET,
        "RELAYBOX_BOOTSTRAP_ORG_SECRET": ORG_SECRET,
    }
    environment.pop("RELAYBOX_FORWARDED_ALLOW_IPS", None)
    environment.update(env)
    server = Relaybox(environment, free_port(), folder / "log", ("--no-workers",))
    await server.start()
    return server


async def fail_until_blocked(http: httpx.AsyncClient, url: str, forwarded: list[str]) -> None:
    """`FAILURE_LIMIT` failures, each with the next X-Forwarded-For value, answered 401."""
    for value in forwarded:
        answer = await http.get(url, headers={**BAD, "X-Forwarded-For": value})
        assert answer.status_code == 401


async def test_a_forged_forwarded_for_does_not_change_the_counted_address(
    tmp_path: Path,
) -> None:
    server = await serve(tmp_path, "default")
    try:
        url = f"http://127.0.0.1:{server.port}/elements/api-v2/instances"
        async with httpx.AsyncClient(timeout=10) as http:  # from 127.0.0.1, loopback
            forged = [f"198.51.100.{n}" for n in range(FAILURE_LIMIT)]
            await fail_until_blocked(http, url, forged)
            again = await http.get(url, headers={**BAD, "X-Forwarded-For": "198.51.100.200"})
            assert again.status_code == 429
            assert (await http.get(url, headers=AUTH)).status_code == 200
    finally:
        server.stop()


async def test_behind_a_configured_proxy_each_forwarded_client_is_counted_alone(
    tmp_path: Path,
) -> None:
    server = await serve(tmp_path, "proxied", RELAYBOX_FORWARDED_ALLOW_IPS="127.0.0.1")
    try:
        url = f"http://127.0.0.1:{server.port}/elements/api-v2/instances"
        async with httpx.AsyncClient(timeout=10) as proxy, client_from("127.0.0.7") as direct:
            await fail_until_blocked(proxy, url, ["203.0.113.7"] * FAILURE_LIMIT)
            blocked = await proxy.get(url, headers={**BAD, "X-Forwarded-For": "203.0.113.7"})
            assert blocked.status_code == 429
            # Another client behind the same proxy is its own address.
            other = await proxy.get(url, headers={**BAD, "X-Forwarded-For": "203.0.113.8"})
            assert other.status_code == 401
            # A peer that is not a configured proxy cannot choose its address.
            await fail_until_blocked(direct, url, ["203.0.113.9"] * FAILURE_LIMIT)
            own = await direct.get(url, headers={**BAD, "X-Forwarded-For": "203.0.113.10"})
            assert own.status_code == 429
    finally:
        server.stop()
