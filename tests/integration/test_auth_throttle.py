"""Failed authentications are rate-limited per client address (relaybox/api/throttle.py)."""

from __future__ import annotations

from pathlib import Path

import httpx

from relaybox.api.throttle import FAILURE_LIMIT, FAILURE_WINDOW
from tests.support.stack import AUTH, running_stack

BAD = {"Authorization": "User wrong, Organization guess"}


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
            # Blocked means blocked: a right guess must look like a wrong one.
            assert (await attacker.get(url, headers=AUTH)).status_code == 429
            element = {"Authorization": "User test-user-secret, Element nope"}
            assert (await attacker.get(f"{url}/1", headers=element)).status_code == 429

            assert (await bystander.get(url, headers=AUTH)).status_code == 200
            assert (await bystander.get(url, headers=BAD)).status_code == 401
            # The provider-facing receiver is not behind platform credentials at all.
            challenge = await attacker.get(
                f"{stack.api}/events/dropbox", params={"challenge": "abc"}
            )
            assert challenge.status_code == 200
