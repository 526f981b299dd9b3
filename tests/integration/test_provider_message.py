"""Error bodies name the provider's own words (`providerMessage`) when the provider refused,
and only then (SPEC section 9); `requestId` and `message` stay."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.support.stack import AUTH, Stack, running_stack


@pytest.fixture
async def stack(tmp_path: Path) -> Any:
    async with running_stack(tmp_path, f"sqlite+aiosqlite:///{tmp_path / 'api.db'}") as running:
        yield running


async def test_reprovisioning_with_a_refused_code_names_dropbox_words(stack: Stack) -> None:
    created = await stack.connect(await stack.new_account("re@example.com"), "re")
    url = f"{stack.api}/instances/{created['id']}"
    answer = await stack.http.put(url, json={"providerData": {"code": "expired"}}, headers=AUTH)
    assert answer.status_code == 400, answer.text
    body = answer.json()
    assert set(body) == {"requestId", "message", "providerMessage"}
    assert body["message"].startswith("providerData.code: Dropbox refused")
    assert body["providerMessage"].startswith("invalid_grant")
    still = await stack.http.get(url, headers=AUTH)
    assert still.status_code == 200 and still.json()["valid"] is True


async def test_errors_of_relaybox_own_carry_no_provider_message(stack: Stack) -> None:
    created = await stack.connect(await stack.new_account("own@example.com"), "own")
    url = f"{stack.api}/instances/{created['id']}"
    no_code = await stack.http.put(url, json={"providerData": {}}, headers=AUTH)
    missing = await stack.http.get(f"{stack.api}/instances/424242", headers=AUTH)
    refused = await stack.http.get(url, headers={"Authorization": "User x, Organization y"})
    for answer, status in ((no_code, 400), (missing, 404), (refused, 401)):
        assert answer.status_code == status, answer.text
        assert set(answer.json()) == {"requestId", "message"}
