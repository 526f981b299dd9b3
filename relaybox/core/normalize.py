"""From provider change entries to standardized events (SPEC section 3).

Pure: the caller loads the relevant part of the instance's index, calls `normalize`
(or `reconcile` after a cursor reset), then stores the events and applies the
returned index changes in the same transaction as the new cursor.

| Dropbox entry                                   | event                                      |
|-------------------------------------------------|--------------------------------------------|
| file, id unknown                                | CREATED files                              |
| file, id known at the same path, new rev        | UPDATED files                              |
| file or folder, id known at another path        | UPDATED with path (old) and newPath        |
| folder, id unknown                              | CREATED folders                            |
| deleted, path held by the index                 | DELETED (objectType from the index)        |
| deleted, path not held, or absorbed by a move   | nothing                                    |

A deleted folder takes its descendants out of the index without an event each, and a
deleted entry below a folder deleted in the same pass is not reported either, so the
events are the same whether or not the provider lists the descendants.

The index is keyed by where an object sits (`IndexedObject.path_lower`): for a provider
that reports paths it is the lowercased path, which such a provider holds unique (Dropbox);
for one that names each object's parent instead it is the chain of ids from the root,
because there two objects may share a name in one folder (Google Drive). Subtrees are
prefixes of that key either way; events always carry `path_display`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from relaybox.connectors.base import Change, Kind

EventType = Literal["CREATED", "UPDATED", "DELETED"]
ObjectType = Literal["files", "folders"]
Tag = Kind


@dataclass(frozen=True)
class IndexedObject:
    """What the index holds about one object of the account."""

    object_id: str
    path_lower: str  # its key: the lowercased path, or "/id/id/..." (see the module's doc)
    path_display: str
    tag: Tag
    rev: str | None = None

    @property
    def object_type(self) -> ObjectType:
        return "folders" if self.tag == "folder" else "files"


@dataclass(frozen=True)
class StandardEvent:
    event_type: EventType
    object_type: ObjectType
    object_id: str
    path: str
    new_path: str | None
    entry: Mapping[str, Any]


@dataclass
class Changes:
    """The events of one pass and what it does to the index."""

    events: list[StandardEvent] = field(default_factory=list)
    upserts: dict[str, IndexedObject] = field(default_factory=dict)
    removals: set[str] = field(default_factory=set)


class Index:
    """An in-memory view of (part of) an instance's index, updated as entries are applied."""

    def __init__(self, objects: Iterable[IndexedObject] = ()) -> None:
        self._by_id: dict[str, IndexedObject] = {}
        self._by_path: dict[str, IndexedObject] = {}
        # Every folder path -> the ids of the objects below it, so a subtree is found
        # without scanning the whole index (a pass may delete many folders).
        self._under: dict[str, set[str]] = {}
        for obj in objects:
            self.put(obj)

    def __len__(self) -> int:
        return len(self._by_id)

    def __iter__(self) -> Any:
        return iter(list(self._by_id.values()))

    def by_id(self, object_id: str) -> IndexedObject | None:
        return self._by_id.get(object_id)

    def by_path(self, path_lower: str) -> IndexedObject | None:
        return self._by_path.get(path_lower)

    def descendants(self, path_lower: str) -> list[IndexedObject]:
        below = self._under.get(path_lower.rstrip("/"), ())
        return [self._by_id[object_id] for object_id in below]

    def put(self, obj: IndexedObject) -> None:
        self.drop(obj.object_id)
        holder = self._by_path.get(obj.path_lower)
        if holder is not None:
            self.drop(holder.object_id)
        self._by_id[obj.object_id] = obj
        self._by_path[obj.path_lower] = obj
        for ancestor in _ancestors(obj.path_lower):
            self._under.setdefault(ancestor, set()).add(obj.object_id)

    def detach(self, object_id: str) -> None:
        """Free the object's path but keep knowing its id (it reappears later in the pass)."""
        obj = self._by_id.get(object_id)
        if obj is not None and self._by_path.get(obj.path_lower) is obj:
            del self._by_path[obj.path_lower]

    def drop(self, object_id: str) -> None:
        old = self._by_id.pop(object_id, None)
        if old is None:
            return
        if self._by_path.get(old.path_lower) is old:
            del self._by_path[old.path_lower]
        for ancestor in _ancestors(old.path_lower):
            below = self._under.get(ancestor)
            if below is not None:
                below.discard(object_id)
                if not below:
                    del self._under[ancestor]


def touched(changes: Iterable[Change]) -> tuple[set[str], set[str], set[str]]:
    """What of the index a pass over these changes needs: (ids, paths, removed paths)."""
    ids: set[str] = set()
    paths: set[str] = set()
    deleted: set[str] = set()
    for change in changes:
        ids.update(i for i in (change.object_id, change.parent_id) if i is not None)
        if change.path_lower is not None:
            paths.add(change.path_lower)
            if change.removed:
                deleted.add(change.path_lower)
    return ids, paths, deleted


def normalize(
    changes: Sequence[Change], index: Index, *, moves_list_descendants: bool = True
) -> Changes:
    """Turn one pass of changes into events, updating `index`."""
    return _Pass(changes, index, moves_list_descendants).run()


def reconcile(
    listing: Sequence[Change], index: Index, *, moves_list_descendants: bool = True
) -> Changes:
    """Events for the difference between a fresh full listing and the index (cursor reset).

    Objects the index holds that the listing lacks are deleted (only the top-most of a
    deleted subtree is reported); the listing is then applied as one pass, so unchanged
    objects produce nothing and nothing already delivered is reported again.
    """
    listed_ids = {c.object_id for c in listing if not c.removed}
    gone = [obj for obj in index if obj.object_id not in listed_ids]
    gone_paths = {obj.path_lower for obj in gone}
    synthetic = [
        removal(obj)
        for obj in sorted(gone, key=lambda o: o.path_lower)
        if not _has_ancestor_in(obj.path_lower, gone_paths)
    ]
    return normalize([*synthetic, *listing], index, moves_list_descendants=moves_list_descendants)


def parents_first(changes: Sequence[Change]) -> Sequence[Change]:
    """Changes named by parent rather than path, ordered so that a folder comes before
    what this same batch places inside it (a listing need not give parents first, and a
    page of changes is in the order things last changed). Removals keep their order,
    ahead of the rest. Changes that carry their paths are left as they came: for them
    order is meaning (a path deleted, then made again)."""
    if all(c.path_lower is not None or c.removed for c in changes):
        return changes
    present = {c.object_id: c for c in changes if not c.removed and c.object_id}
    depths: dict[str, int] = {}

    def depth(object_id: str) -> int:
        found = depths.get(object_id)
        if found is not None:
            return found
        chain: list[str] = []
        current: str | None = object_id
        while current is not None and current in present and current not in chain:
            if current in depths:
                break
            chain.append(current)
            current = present[current].parent_id
        base = depths.get(current, -1) + 1 if current is not None and current in depths else 0
        for level, member in enumerate(reversed(chain)):
            depths[member] = base + level
        return depths[object_id]

    removals = [c for c in changes if c.removed]
    rest = [c for c in changes if not c.removed]
    return removals + sorted(rest, key=lambda c: depth(c.object_id) if c.object_id else 0)


def removal(obj: IndexedObject) -> Change:
    """The removal of an indexed object that no provider entry reported (a reset, or an
    object left behind by a moved folder); its raw entry says so."""
    raw = {"removed": True, "id": obj.object_id, "path_display": obj.path_display}
    return Change(obj.object_id, None, obj.path_lower, obj.path_display, removed=True, raw=raw)


class _Pass:
    """The state of one normalization pass over a list of changes."""

    def __init__(
        self, changes: Sequence[Change], index: Index, moves_list_descendants: bool
    ) -> None:
        self.changes_in = parents_first(changes)
        self.index = index
        self.moves_list_descendants = moves_list_descendants
        self.changes = Changes()
        # Ids that appear alive somewhere in this pass: a removal of one is a move.
        self.alive = {c.object_id for c in changes if not c.removed and c.object_id}
        # Paths removed in this pass: named by the provider, or (removed by id) the index's.
        self.deleted_paths = {
            path for c in changes if c.removed and (path := self.removed_path(c)) is not None
        }
        # Old paths of folders that moved: what is left below them afterwards is gone.
        self.vacated: list[str] = []

    def removed_path(self, change: Change) -> str | None:
        if change.path_lower is not None:
            return change.path_lower
        held = self.index.by_id(change.object_id) if change.object_id else None
        return held.path_lower if held and held.object_id not in self.alive else None

    def run(self) -> Changes:
        for change in self.changes_in:
            if change.removed:
                self.deleted(change)
            elif change.kind is not None:
                self.present(change)
        self.sweep_vacated()
        return self.changes

    def deleted(self, change: Change) -> None:
        if change.object_id is not None:
            held = self.index.by_id(change.object_id)
        else:
            held = self.index.by_path(change.path_lower or "")
        if held is None:
            return
        if held.object_id in self.alive:
            return  # the object reappears elsewhere in this pass: a move, reported there
        path = held.path_lower
        if any(self.reported_later(a) for a in _ancestors(path) if a in self.deleted_paths):
            return  # reported with its deleted ancestor, later in this pass
        self.report_deleted(held, change.raw)

    def reported_later(self, path_lower: str) -> bool:
        held = self.index.by_path(path_lower)
        return held is not None and held.object_id not in self.alive

    def report_deleted(self, held: IndexedObject, raw: Mapping[str, Any]) -> None:
        for child in self.index.descendants(held.path_lower):
            if child.object_id in self.alive:
                self.index.detach(child.object_id)  # moved out before its parent went
            else:
                self.remove(child)
        self.remove(held)
        self.changes.events.append(
            StandardEvent("DELETED", held.object_type, held.object_id, held.path_display, None, raw)
        )

    def placed(self, change: Change) -> tuple[str, str]:
        """(key, path_display) of a present change: its own path, or placed below its
        parent, keyed by ids so that same-named siblings stay two objects."""
        if change.path_lower is not None:
            return change.path_lower, change.path_display or change.path_lower
        parent = self.index.by_id(change.parent_id) if change.parent_id else None
        display = f"{parent.path_display if parent else ''}/{change.name or change.object_id}"
        return f"{parent.path_lower if parent else ''}/{change.object_id}", display

    def present(self, change: Change) -> None:
        tag: Tag = "folder" if change.kind == "folder" else "file"
        path_lower, path_display = self.placed(change)
        obj = IndexedObject(
            object_id=change.object_id or path_lower,
            path_lower=path_lower,
            path_display=path_display,
            tag=tag,
            rev=change.version if tag == "file" else None,
        )
        raw = change.raw
        known = self.index.by_id(obj.object_id)
        otype, oid = obj.object_type, obj.object_id
        event: StandardEvent | None = None
        moved_from: str | None = None
        if known is None:
            event = StandardEvent("CREATED", otype, oid, obj.path_display, None, raw)
        elif known.path_display != obj.path_display:
            event = StandardEvent("UPDATED", otype, oid, known.path_display, obj.path_display, raw)
        elif tag == "file" and known.rev != obj.rev:
            event = StandardEvent("UPDATED", otype, oid, obj.path_display, None, raw)
        # A key that changed with the same path shown is no event: a Drive row indexed
        # by path before keys were chains of ids, re-keyed now (its content with it).
        if known is not None and known.tag == "folder" and _where(known) != _where(obj):
            moved_from = known.path_lower
        displaced = self.index.by_path(obj.path_lower)
        if displaced is not None and displaced.object_id != obj.object_id:
            if displaced.object_id in self.alive:
                self.index.detach(displaced.object_id)  # it moves elsewhere in this pass
            else:
                self.report_deleted(displaced, raw)  # replaced without a removal of its own
        if moved_from is not None and not self.moves_list_descendants and known is not None:
            self.carry_descendants(known, obj)  # renamed in place too: the paths shown change
        elif moved_from is not None and moved_from != obj.path_lower:
            self.vacated.append(moved_from)
        self.index.put(obj)
        self.keep(obj)
        if event is not None:
            self.changes.events.append(event)

    def carry_descendants(self, old: IndexedObject, new: IndexedObject) -> None:
        """A moved folder's content moves with it (the provider lists only the folder)."""
        for child in self.index.descendants(old.path_lower):
            moved = replace(
                child,
                path_lower=new.path_lower + child.path_lower[len(old.path_lower) :],
                path_display=new.path_display + child.path_display[len(old.path_display) :],
            )
            self.index.put(moved)
            self.keep(moved)

    def keep(self, obj: IndexedObject) -> None:
        self.changes.removals.discard(obj.object_id)
        self.changes.upserts[obj.object_id] = obj

    def sweep_vacated(self) -> None:
        """Objects still below a moved folder's old path did not move with it: deleted."""
        for old_path in self.vacated:
            left = sorted(self.index.descendants(old_path), key=lambda o: o.path_lower)
            reported: set[str] = set()
            for obj in left:
                if obj.object_id in self.changes.upserts or self.index.by_id(obj.object_id) is None:
                    continue
                if _has_ancestor_in(obj.path_lower, reported):
                    self.remove(obj)
                    continue
                reported.add(obj.path_lower)
                self.report_deleted(obj, removal(obj).raw)

    def remove(self, obj: IndexedObject) -> None:
        self.index.drop(obj.object_id)
        self.changes.upserts.pop(obj.object_id, None)
        self.changes.removals.add(obj.object_id)


def _where(obj: IndexedObject) -> tuple[str, str]:
    return obj.path_lower, obj.path_display


def _ancestors(path_lower: str) -> Iterable[str]:
    parts = path_lower.strip("/").split("/")
    for depth in range(1, len(parts)):
        yield "/" + "/".join(parts[:depth])


def _has_ancestor_in(path_lower: str, paths: set[str]) -> bool:
    return any(ancestor in paths for ancestor in _ancestors(path_lower))
