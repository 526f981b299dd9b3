"""Reading a provider through the port, page after page: the one paging loop.

Change passes (pipeline/changes.py) read what changed since a cursor, and relist after a
reset; creating or re-authenticating an instance (services/instances.py) lists the
account to build its index. Both page through `Connector.changes` / `Connector.list_all`
here, whatever the provider, and both then complete what they read with `with_parents`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from relaybox.connectors.base import Change, Connector
from relaybox.core.errors import CursorReset

Renew = Callable[[], Awaitable[None]]
"""Called between pages of a long read (a pass keeps its lease with it)."""
Held = Callable[[set[str]], Awaitable[set[str]]]
"""Which of these object ids the instance's index holds."""

MAX_PARENT_LEVELS = 20  # levels `with_parents` climbs towards the root
MAX_PARENT_LOOKUPS = 200  # folders it reads for one pass or listing
"""Beyond these bounds a change whose parent is still unplaced goes to the root, as one
whose parent is gone or trashed does."""


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


async def _nothing_held(ids: set[str]) -> set[str]:
    return set()


async def with_parents(
    connector: Connector,
    token: str,
    account_id: str | None,
    changes: list[Change],
    held: Held = _nothing_held,
    renew: Renew | None = None,
) -> list[Change]:
    """`changes`, preceded by the folders needed to place them (core/normalize.py).

    A change named by its parent (`Connector.paths` False) is placed below the parent's
    path, which the index holds or the same read brings. A parent that neither does (its
    own change comes later in the feed, which lists each object at its latest change; or
    a later page of a listing split in two) is read from the provider as it is now, and
    so on up while a folder's parent is unplaced, to the account's root. Such a folder
    unknown to the index becomes a CREATED event at its true path; its own change, when it
    comes, then finds it known there. `held` says which ids the index holds (a listing
    that replaces the index holds none); `renew`, if given, is called between reads, as
    between pages.
    """
    placed = {c.object_id for c in changes if not c.removed and c.object_id}
    asked: set[str] = set()
    found: list[list[Change]] = []
    level = changes
    for _ in range(MAX_PARENT_LEVELS):
        wanted = _parents_of(level) - placed - asked
        if wanted:
            wanted -= await held(wanted)
        room = MAX_PARENT_LOOKUPS - len(asked)
        if not wanted or room <= 0:
            break
        if found and renew is not None:
            await renew()  # between reads, as between pages (the first follows the read)
        ask = sorted(wanted)[:room]
        asked.update(ask)
        level = await connector.folders(token, account_id, ask)
        if not level:
            break
        found.append(level)
        placed.update(c.object_id for c in level if c.object_id)
    if not found:
        return changes
    return [c for folders in reversed(found) for c in folders] + changes


def _parents_of(changes: list[Change]) -> set[str]:
    """The parents that present changes named by parent, not by path, are placed below."""
    return {
        c.parent_id
        for c in changes
        if not c.removed and c.path_lower is None and c.parent_id is not None
    }
