"""Reading a provider through the port, page after page: the one paging loop.

Change passes (pipeline/changes.py) read what changed since a cursor, and relist after a
reset; creating or re-authenticating an instance (services/instances.py) lists the
account to build its index. Both page through `Connector.changes` / `Connector.list_all`
here, whatever the provider.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from relaybox.connectors.base import Change, Connector
from relaybox.core.errors import CursorReset

Renew = Callable[[], Awaitable[None]]
"""Called between pages of a long read (a pass keeps its lease with it)."""


@dataclass(frozen=True)
class Fetched:
    """What a pass read from the provider."""

    changes: list[Change]
    cursor: str
    reset: bool  # a fresh listing after the cursor was void: reconcile with the index
    has_more: bool  # the pass stopped early; another one continues from `cursor`
    moves_list_descendants: bool = True  # the connector's (core/normalize.py)


@dataclass(frozen=True)
class Listing:
    """An account's objects, read from the start: those read so far and the cursor after
    them (`complete`: the whole account)."""

    cursor: str
    changes: list[Change]
    complete: bool


async def _nothing() -> None:
    return None


async def list_account(
    connector: Connector, token: str, *, limit: int | None = None, renew: Renew = _nothing
) -> Listing:
    """List the account from its start; stop after `limit` objects (the rest continues
    from the cursor). The listing's cursor stands where the listing began."""
    page = await connector.list_all(token)
    changes = list(page.changes)
    while page.has_more and (limit is None or len(changes) < limit):
        await renew()
        page = await connector.list_all(token, page.cursor)
        changes.extend(page.changes)
    return Listing(page.cursor, changes, complete=not page.has_more)


async def read_changes(
    connector: Connector, token: str, cursor: str, *, max_changes: int, renew: Renew = _nothing
) -> Fetched:
    """What changed since `cursor`, up to about `max_changes` (then `has_more`); after a
    cursor reset, the whole account listed again (`reset`: reconcile it with the index)."""
    moves = connector.moves_list_descendants
    changes: list[Change] = []
    try:
        while True:
            page = await connector.changes(token, cursor)
            changes.extend(page.changes)
            cursor = page.cursor
            if not page.has_more:
                return Fetched(
                    changes, cursor, reset=False, has_more=False, moves_list_descendants=moves
                )
            if len(changes) >= max_changes:
                return Fetched(
                    changes, cursor, reset=False, has_more=True, moves_list_descendants=moves
                )
            await renew()
    except CursorReset:
        pass
    listing = await list_account(connector, token, renew=renew)
    return Fetched(
        listing.changes, listing.cursor, reset=True, has_more=False, moves_list_descendants=moves
    )
