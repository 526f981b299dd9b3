"""Sandbox webhooks: challenge, Dropbox's signature, coalescing, retries, the log."""

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Callable
from itertools import pairwise

import httpx
import pytest

from relaybox.sandbox.state import Sandbox
from relaybox.sandbox.tree import FileTree
from relaybox.sandbox.webhooks import signature

HOOK = "http://receiver.test/hook"


class Receiver:
    """Answers challenges and records notifications; ``statuses`` scripts POST answers."""

    def __init__(self) -> None:
        self.posts: list[httpx.Request] = []
        self.challenges = 0
        self.statuses: list[int] = []
        self.refuse_challenges = 0

    async def __call__(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            self.challenges += 1
            if self.refuse_challenges:
                self.refuse_challenges -= 1
                raise httpx.ConnectError("not listening yet", request=request)
            return httpx.Response(200, text=request.url.params["challenge"])
        self.posts.append(request)
        return httpx.Response(self.statuses.pop(0) if self.statuses else 200)

    def bodies(self) -> list[dict[str, object]]:
        return [json.loads(p.content) for p in self.posts]


@pytest.fixture
async def sandbox() -> AsyncIterator[Sandbox]:
    box = Sandbox(webhook_delay=0.05)
    box.webhooks.retry_base = 0.01
    yield box
    await box.aclose()


@pytest.fixture
def receiver(sandbox: Sandbox) -> Receiver:
    hook = Receiver()
    sandbox.webhooks.transport = httpx.MockTransport(hook)
    return hook


async def eventually(check: Callable[[], bool], seconds: float = 3.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    while not check():
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


def authorized_account(sandbox: Sandbox, email: str, app_key: str = "key") -> str:
    account = sandbox.create_account(email)
    sandbox.authorize(app_key, account.account_id, None)
    return account.account_id


def write(sandbox: Sandbox, account_id: str, path: str) -> None:
    def upload(tree: FileTree) -> object:
        return tree.upload(path, path.encode(), mode="overwrite")

    sandbox.change(account_id, upload)


def test_signature_matches_dropbox_test_vector() -> None:
    body = b'{"delta": {"users": [12345]}}'
    expected = "0a8c16b085420b960dc78664279fe09e936a2a01b1f91064869d9e77dfd64529"
    assert signature("the_secret", body) == expected


async def test_challenge_is_retried_until_echoed(sandbox: Sandbox, receiver: Receiver) -> None:
    receiver.refuse_challenges = 2
    sandbox.register_app("key", "secret", HOOK)
    await eventually(lambda: sandbox.apps["key"].webhook_verified)
    assert receiver.challenges == 3
    log = [e for e in sandbox.webhooks.log if e["kind"] == "challenge"]
    assert [e["verified"] for e in log] == [False, False, True]
    assert log[0]["error"] and log[2]["status"] == 200
    sandbox.register_app("key", "secret", HOOK)  # idempotent: no new challenge
    await asyncio.sleep(0.05)
    assert receiver.challenges == 3


async def test_wrong_echo_is_not_verification(sandbox: Sandbox) -> None:
    async def wrong(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="something else")

    sandbox.webhooks.transport = httpx.MockTransport(wrong)
    sandbox.webhooks.challenge_attempts = 2
    sandbox.register_app("key", "secret", HOOK)
    await eventually(lambda: len(sandbox.webhooks.log) == 2)
    await asyncio.sleep(0.05)
    assert not sandbox.apps["key"].webhook_verified


async def test_changes_coalesce_into_one_signed_body(sandbox: Sandbox, receiver: Receiver) -> None:
    sandbox.register_app("key", "secret", HOOK)
    await eventually(lambda: sandbox.apps["key"].webhook_verified)
    first = authorized_account(sandbox, "one@x.io")
    second = authorized_account(sandbox, "two@x.io")
    for i in range(3):
        write(sandbox, first, f"/f{i}.txt")
    write(sandbox, second, "/g.txt")
    await eventually(lambda: len(receiver.posts) == 1)
    await asyncio.sleep(0.15)
    assert len(receiver.posts) == 1
    post = receiver.posts[0]
    expected_sig = hmac.new(b"secret", post.content, hashlib.sha256).hexdigest()
    assert post.headers["x-dropbox-signature"] == expected_sig
    assert post.headers["content-type"] == "application/json"
    accounts = sorted([first, second])
    uids = [sandbox.accounts[a].uid for a in accounts]
    assert json.loads(post.content) == {
        "list_folder": {"accounts": accounts},
        "delta": {"users": uids},
    }
    write(sandbox, second, "/later.txt")  # a later change is a new notification
    await eventually(lambda: len(receiver.posts) == 2)
    assert receiver.bodies()[1]["list_folder"] == {"accounts": [second]}


async def test_non_200_is_retried_with_the_same_body(sandbox: Sandbox, receiver: Receiver) -> None:
    sandbox.register_app("key", "secret", HOOK)
    account_id = authorized_account(sandbox, "r@x.io")
    receiver.statuses = [500, 404]
    write(sandbox, account_id, "/x.txt")
    await eventually(lambda: len(receiver.posts) == 3)
    assert len({p.content for p in receiver.posts}) == 1
    sent = [e for e in sandbox.webhooks.log if e["kind"] == "notification"]
    assert [(e["attempt"], e["status"]) for e in sent] == [(1, 500), (2, 404), (3, 200)]
    gaps = [later["time"] - earlier["time"] for earlier, later in pairwise(sent)]
    base = sandbox.webhooks.retry_base
    assert gaps[0] >= 0.9 * base and gaps[1] >= 0.9 * 2 * base  # exponential backoff


async def test_retries_are_bounded(sandbox: Sandbox, receiver: Receiver) -> None:
    sandbox.webhooks.notify_attempts = 3
    sandbox.register_app("key", "secret", HOOK)
    account_id = authorized_account(sandbox, "b@x.io")
    receiver.statuses = [503] * 10
    write(sandbox, account_id, "/x.txt")
    await eventually(lambda: len(receiver.posts) == 3)
    await asyncio.sleep(0.1)
    assert len(receiver.posts) == 3


async def test_only_apps_the_account_authorized_are_notified(
    sandbox: Sandbox, receiver: Receiver
) -> None:
    sandbox.register_app("key", "secret", HOOK)
    sandbox.register_app("other", "secret2", HOOK + "/other")
    account_id = authorized_account(sandbox, "only@x.io", app_key="key")
    write(sandbox, account_id, "/x.txt")
    await eventually(lambda: len(receiver.posts) == 1)
    await asyncio.sleep(0.1)
    assert [str(p.url) for p in receiver.posts] == [HOOK]


async def test_notification_waits_for_a_late_listener(sandbox: Sandbox, receiver: Receiver) -> None:
    receiver.refuse_challenges = 3  # the receiver is not listening yet
    sandbox.register_app("key", "secret", HOOK)
    account_id = authorized_account(sandbox, "late@x.io")
    write(sandbox, account_id, "/early.txt")
    await eventually(lambda: len(receiver.posts) == 1)
    assert sandbox.apps["key"].webhook_verified


def test_register_app_without_a_running_loop_defers_the_challenge() -> None:
    box = Sandbox(webhook_delay=0.01)
    hook = Receiver()
    box.webhooks.transport = httpx.MockTransport(hook)
    box.register_app("key", "secret", HOOK)  # no event loop here

    async def later() -> None:
        box.start()
        await eventually(lambda: box.apps["key"].webhook_verified)
        await box.aclose()

    asyncio.run(later())
    assert hook.challenges == 1


async def test_webhook_log_route(sandbox: Sandbox, receiver: Receiver) -> None:
    from relaybox.sandbox.app import create_app

    app = create_app(webhook_delay=0.01)
    box: Sandbox = app.state.sandbox
    box.webhooks.transport = httpx.MockTransport(receiver)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://sandbox") as client:
        await client.post(
            "/_sandbox/apps", json={"app_key": "k", "app_secret": "s", "webhook_uri": HOOK}
        )
        account = (await client.post("/_sandbox/accounts", json={"email": "l@x.io"})).json()
        await client.post(
            "/_sandbox/authorize",
            json={"app_key": "k", "account_id": account["account_id"], "redirect_uri": "x"},
        )
        await client.post(
            f"/_sandbox/accounts/{account['account_id']}/folders", json={"path": "/F"}
        )

        async def kinds() -> list[str]:
            entries = (await client.get("/_sandbox/webhooks/log")).json()["entries"]
            return [e["kind"] for e in entries]

        await eventually(lambda: len(receiver.posts) == 1)
        assert await kinds() == ["challenge", "notification"]
    await box.aclose()
