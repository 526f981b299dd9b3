"""A storm of webhooks for one account is not a storm of calls to Dropbox.

Dropbox retries webhooks, and under a burst many webhooks name changes that a pass has
already fetched: passes that find nothing. After such a pass relaybox waits
`QUIET_PASS_PAUSE` before the instance's next one, so however fast webhooks come, one
account costs Dropbox at most one `list_folder/continue` per pause, and a change made in
the middle of the storm still arrives as its event.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from pathlib import Path

from relaybox.store.pass_results import QUIET_PASS_PAUSE
from tests.support.stack import APP_SECRET, Stack, running_stack

STORM = 80  # webhooks, each sent once the previous one is acknowledged
CONTINUE = "/2/files/list_folder/continue"


async def _webhook(stack: Stack, account: str) -> None:
    body = json.dumps({"list_folder": {"accounts": [account]}}).encode()
    signature = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    answer = await stack.http.post(
        f"{stack.api}/events/dropbox", content=body, headers={"X-Dropbox-Signature": signature}
    )
    assert answer.status_code == 200, answer.text


async def test_a_webhook_storm_is_not_a_storm_of_provider_calls(
    tmp_path: Path, database_url: str
) -> None:
    # The sandbox's own webhooks are held back: the storm is the test's webhooks alone.
    async with running_stack(tmp_path, database_url, webhook_delay=30.0) as stack:
        account = await stack.new_account("storm@example.com")
        await stack.connect(account)
        await stack.upload(account, "/before.txt", b"b")
        await _webhook(stack, account)
        await stack.receiver.wait_for(lambda r: [e["path"] for e in r.events()] == ["/before.txt"])

        clock = asyncio.get_running_loop()
        calls_before = len(stack.sandbox_log.of(CONTINUE))
        started = clock.time()
        for number in range(STORM):
            if number == STORM // 2:
                await stack.upload(account, "/during.txt", b"d")
            await _webhook(stack, account)
        elapsed = clock.time() - started
        await stack.receiver.wait_for(lambda r: "/during.txt" in [e["path"] for e in r.events()])
        calls = stack.sandbox_log.of(CONTINUE)[calls_before:]
        during = [at for at, _ in calls if at <= started + elapsed]

        # Every pass during the storm but the one that found /during.txt found nothing, so
        # each is followed by a pause: at most one call per pause, plus that pass and the
        # one under way when the storm began.
        allowed = elapsed / QUIET_PASS_PAUSE.total_seconds() + 3
        assert len(during) <= allowed, (
            f"{len(during)} calls to Dropbox for {STORM} webhooks in {elapsed:.2f} s"
        )
        assert len(during) < STORM / 2
        assert [e["path"] for e in stack.receiver.events()] == ["/before.txt", "/during.txt"]
