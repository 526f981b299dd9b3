"""One Dropbox webhook naming many accounts: every instance gets its changes, and what it is
told of the webhook names its own account only (SPEC section 9: `message.raw` is the
provider's payload with every other account removed; tenants may share an app)."""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

from tests.support.stack import APP_SECRET, running_stack

ACCOUNTS = 6


async def test_one_webhook_naming_many_accounts(tmp_path: Path, database_url: str) -> None:
    # Sandbox webhooks are held back (5 s) so the only webhook before the events is ours.
    async with running_stack(tmp_path, database_url, webhook_delay=5.0) as stack:
        accounts = [await stack.new_account(f"fan{n}@example.com") for n in range(ACCOUNTS)]
        for n, account in enumerate(accounts):
            await stack.connect(account, f"fan {n}")
            await stack.upload(account, f"/fan-{n}.txt", b"x")
        body = json.dumps(
            {
                "list_folder": {"accounts": [*accounts, "dbid:AAnot-connected-anywhere"]},
                "delta": {"users": list(range(1000, 1000 + ACCOUNTS + 1))},
            }
        ).encode()
        answer = await stack.http.post(
            f"{stack.api}/events/dropbox",
            content=body,
            headers={
                "X-Dropbox-Signature": hmac.new(
                    APP_SECRET.encode(), body, hashlib.sha256
                ).hexdigest()
            },
        )
        assert answer.status_code == 200
        await stack.receiver.wait_for(lambda r: len(r.events()) >= ACCOUNTS)

        seen = {}
        for item in stack.receiver.received:
            message = item.json()["message"]
            own = message["accountId"]
            seen[own] = [e["path"] for e in message["events"]]
            assert message["raw"] == {"list_folder": {"accounts": [own]}}
            others = [a for a in accounts if a != own]
            assert not any(other in item.body.decode() for other in others)
        assert seen == {account: [f"/fan-{n}.txt"] for n, account in enumerate(accounts)}
