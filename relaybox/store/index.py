"""The per-instance index (object id -> path, type, rev) kept beside the cursor."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import ColumnElement, Row, and_, delete, insert, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from relaybox.connectors.base import Change
from relaybox.core.normalize import Changes, Index, IndexedObject, normalize, touched
from relaybox.store.tables import IndexEntry

CHUNK = 500
# A pass touching at most this many id lists, path lists and deleted folders shares its
# index query with the other passes of its group.
SHARED_CONDITIONS = 4
T = TypeVar("T")


COLUMNS = (
    IndexEntry.object_id,
    IndexEntry.path_lower,
    IndexEntry.path_display,
    IndexEntry.tag,
    IndexEntry.rev,
)


def _to_object(row: Row[str, str, str, str, str | None]) -> IndexedObject:
    return IndexedObject(
        object_id=row.object_id,
        path_lower=row.path_lower,
        path_display=row.path_display,
        tag="folder" if row.tag == "folder" else "file",
        rev=row.rev,
    )


async def load_all(session: AsyncSession, instance_id: int) -> Index:
    rows = await session.execute(select(*COLUMNS).where(IndexEntry.instance_id == instance_id))
    return Index(_to_object(row) for row in rows)


async def held_ids(session: AsyncSession, instance_id: int, object_ids: Iterable[str]) -> set[str]:
    """Which of these object ids the instance's index holds."""
    held: set[str] = set()
    for ids in _chunks(sorted(object_ids)):
        query = select(IndexEntry.object_id).where(
            IndexEntry.instance_id == instance_id, IndexEntry.object_id.in_(ids)
        )
        held.update(await session.scalars(query))
    return held


async def load_for(session: AsyncSession, instance_id: int, changes: Sequence[Change]) -> Index:
    """The part of the index a pass over `changes` can touch (ids, paths, removed subtrees)."""
    return (await load_for_many(session, {instance_id: changes}))[instance_id]


async def load_for_many(
    session: AsyncSession, passes: Mapping[int, Sequence[Change]]
) -> dict[int, Index]:
    """`load_for` of several instances' passes: the small ones share a query."""
    found: dict[int, dict[str, Any]] = {instance_id: {} for instance_id in passes}
    clauses: list[ColumnElement[bool]] = []
    for instance_id, changes in passes.items():
        conditions = _touched(changes)
        if not conditions:
            continue  # a pass that read nothing touches nothing
        if len(conditions) <= SHARED_CONDITIONS:
            clauses.append(and_(IndexEntry.instance_id == instance_id, or_(*conditions)))
            continue
        for condition_chunk in _chunks(conditions, 50):
            clauses.append(and_(IndexEntry.instance_id == instance_id, or_(*condition_chunk)))
    await _load_into(session, found, clauses)
    # A folder named by id alone (removed, or moved by a provider that does not list its
    # content again): its subtree goes or moves with it, so it is loaded too.
    subtrees: list[ColumnElement[bool]] = []
    for instance_id, changes in passes.items():
        by_id = {c.object_id for c in changes if c.path_lower is None and c.object_id}
        rows = found[instance_id]
        for path in sorted(
            r.path_lower for i, r in rows.items() if i in by_id and r.tag == "folder"
        ):
            below = IndexEntry.path_lower.startswith(path.rstrip("/") + "/", autoescape=True)
            subtrees.append(and_(IndexEntry.instance_id == instance_id, below))
    await _load_into(session, found, subtrees)
    return {
        instance_id: Index(_to_object(row) for row in rows.values())
        for instance_id, rows in found.items()
    }


async def _load_into(
    session: AsyncSession, found: dict[int, dict[str, Any]], clauses: list[ColumnElement[bool]]
) -> None:
    for clause_chunk in _chunks(clauses, 50):
        query = select(IndexEntry.instance_id, *COLUMNS).where(or_(*clause_chunk))
        for row in await session.execute(query):
            found[row.instance_id][row.object_id] = row


def _touched(changes: Sequence[Change]) -> list[ColumnElement[bool]]:
    """Conditions for the index rows changes can touch: by id, by path, below a removal."""
    ids, paths, deleted = touched(changes)
    conditions: list[ColumnElement[bool]] = []
    for id_chunk in _chunks(sorted(ids)):
        conditions.append(IndexEntry.object_id.in_(id_chunk))
    for path_chunk in _chunks(sorted(paths)):
        conditions.append(IndexEntry.path_lower.in_(path_chunk))
    for path in sorted(deleted):
        conditions.append(IndexEntry.path_lower.startswith(path.rstrip("/") + "/", autoescape=True))
    return conditions


async def apply(session: AsyncSession, instance_id: int, changes: Changes) -> None:
    """Write a pass's index changes: removals first, then upserts."""
    await delete_ids(session, instance_id, changes.removals | set(changes.upserts))
    await insert_rows(session, rows(instance_id, changes))


async def delete_ids(session: AsyncSession, instance_id: int, object_ids: Iterable[str]) -> None:
    for ids in _chunks(sorted(object_ids)):
        await session.execute(
            delete(IndexEntry).where(
                IndexEntry.instance_id == instance_id, IndexEntry.object_id.in_(ids)
            )
        )


def rows(instance_id: int, changes: Changes) -> list[dict[str, Any]]:
    """The index rows a pass's upserts write (after `delete_ids` removed the old ones)."""
    return [
        {
            "instance_id": instance_id,
            "object_id": obj.object_id,
            "path_lower": obj.path_lower,
            "path_display": obj.path_display,
            "tag": obj.tag,
            "rev": obj.rev,
        }
        for obj in changes.upserts.values()
    ]


async def insert_rows(session: AsyncSession, inserts: Sequence[dict[str, Any]]) -> None:
    for chunk in _chunks(inserts, 2000):
        await session.execute(insert(IndexEntry), chunk)


async def replace_index(session: AsyncSession, instance_id: int, listing: Sequence[Change]) -> None:
    """Make the index hold exactly a fresh listing (no events)."""
    await session.execute(delete(IndexEntry).where(IndexEntry.instance_id == instance_id))
    changes = normalize(listing, Index())
    await apply(session, instance_id, changes)


def _chunks(items: Iterable[T], size: int = CHUNK) -> list[list[T]]:
    items = list(items)
    return [items[i : i + size] for i in range(0, len(items), size)]
