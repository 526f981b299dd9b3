"""The Authorization header in every form Open Connectors clients send.

Sources: devportal _includes/Elements/index.md ("User <secret>, Organization <secret>" for
platform calls, "User <secret>, Element <token>" for calls about one instance);
devportal docs/elements/salesforce/index.md and docs/elements/sapc4c-crm/index.md
("User ..., Organization ..., Element ..."); devportal _includes/bulk-apis.md ("Element ...,
User ..." — Element first); churros src/core/defaults.js (after creating an instance every
call, platform calls included, carries "User u, Organization o, Element t"); ezra-sample-app
src/actions/instances.js and objects.js (the same three-part header).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.compat.anchor import authorization, created
from tests.support.stack import Stack, running_stack


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[Stack, Any, Any]]:
    """A running stack with two instances of one organization."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'compat.db'}"
    async with running_stack(tmp_path, url) as stack:
        first = await created(stack, await stack.new_account("first@example.com"), "first")
        second = await created(stack, await stack.new_account("second@example.com"), "second")
        yield stack, first, second


@pytest.mark.parametrize(
    "parts",
    [
        ("User", "Organization"),
        ("Organization", "User"),
    ],
)
async def test_user_and_organization_in_any_order(
    pair: tuple[Stack, Any, Any], parts: tuple[str, ...]
) -> None:
    """Platform calls: devportal _includes/Elements/index.md, churros src/core/defaults.js."""
    stack, first, second = pair
    listed = await stack.http.get(f"{stack.api}/instances", headers=authorization(*parts))
    assert listed.status_code == 200, listed.text
    assert {first["id"], second["id"]} <= {i["id"] for i in listed.json()}


@pytest.mark.parametrize(
    "parts",
    [
        ("User", "Element"),
        ("Element", "User"),
        ("User", "Organization", "Element"),
        ("Element", "Organization", "User"),
        ("Organization", "Element", "User"),
    ],
)
async def test_element_forms_reach_their_instance_only(
    pair: tuple[Stack, Any, Any], parts: tuple[str, ...]
) -> None:
    """With an Element part the caller sees that instance and no other.

    User+Element: devportal _includes/Elements/index.md; Element+User order: devportal
    _includes/bulk-apis.md; User+Organization+Element: churros src/core/defaults.js
    (`exports.token`), devportal docs/elements/salesforce/index.md, ezra-sample-app
    src/actions/instances.js.
    """
    stack, first, second = pair
    headers = authorization(*parts, Element=first["token"])
    mine = await stack.http.get(f"{stack.api}/instances/{first['id']}", headers=headers)
    assert mine.status_code == 200, mine.text
    assert mine.json()["id"] == first["id"]
    other = await stack.http.get(f"{stack.api}/instances/{second['id']}", headers=headers)
    assert other.status_code in (403, 404), other.text
    listed = await stack.http.get(f"{stack.api}/instances", headers=headers)
    assert listed.status_code == 200, listed.text
    assert [i["id"] for i in listed.json()] == [first["id"]]


async def test_three_part_header_reads_the_instances_events(pair: tuple[Stack, Any, Any]) -> None:
    """churros src/test/platform/events/events.js calls `GET instances/{id}/events` with the
    three-part header that src/core/provisioner.js set after creating the instance."""
    stack, first, _ = pair
    headers = authorization("User", "Organization", "Element", Element=first["token"])
    answer = await stack.http.get(f"{stack.api}/instances/{first['id']}/events", headers=headers)
    assert answer.status_code == 200, answer.text
    assert isinstance(answer.json(), list)


@pytest.mark.parametrize(
    ("parts", "secrets"),
    [
        (("User", "Element"), {"User": "wrong-user-secret"}),
        (("User", "Organization", "Element"), {"Organization": "wrong-org-secret"}),
        (("User", "Organization", "Element"), {"User": "wrong-user-secret"}),
        (("User", "Organization", "Element"), {"Element": "wrong-token"}),
    ],
)
async def test_every_secret_given_is_checked(
    pair: tuple[Stack, Any, Any], parts: tuple[str, ...], secrets: dict[str, str]
) -> None:
    """A wrong part is a 401 with the anchor's error body (devportal _includes/error-codes.md:
    "401 Unauthorized - An invalid element token, user secret and/or org secret provided";
    body `{"message", "requestId"}`)."""
    stack, first, _ = pair
    headers = authorization(*parts, **{"Element": first["token"], **secrets})
    answer = await stack.http.get(f"{stack.api}/instances/{first['id']}", headers=headers)
    assert answer.status_code == 401, answer.text
    assert answer.json()["message"] and answer.json()["requestId"]
