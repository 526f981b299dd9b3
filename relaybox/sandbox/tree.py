"""One account's files and folders, and the change log behind cursors.

Every mutation appends to ``log`` the state each touched path took; a
cursor is a position in that log, so ``list_folder/continue`` answers
exactly what changed since. Failures are raised as the Dropbox error
union members they become (see the ``*Failure`` classes).

What ``continue`` lists, and how it relates to Dropbox:

- By default it lists every logged state in order, so a file created and
  then edited after the cursor shows twice (two ``file`` entries, the later
  with the newer ``rev``), and one created then deleted shows as a ``file``
  then a ``deleted`` entry. Dropbox instead lists each changed path once,
  in its latest state, and may leave out a path created and deleted in the
  same interval. A client that applies entries in order (as Dropbox asks)
  ends in the same state either way, so the default stays the fuller,
  order-preserving shape: it exercises more of a client.
- With the account setting ``collapse_changes`` (``POST
  /_sandbox/accounts/{id}/settings``) it answers Dropbox's shape: the latest
  entry of each changed path, ordered by when that latest change happened
  (a path created and deleted in the interval shows as ``deleted``).
  Paging stays exact: a page ends after the change of its last entry, and
  every path left out has a later latest change.
- A folder delete (or a move, which deletes the old paths) lists the
  folder's ``deleted`` entry; its descendants' deletions are logged as
  ``descendant`` changes and listed only with the account setting
  ``report_descendant_deletes``. One is always listed when no listed
  deletion of its parent covers it (the listing's own folder deleted from
  above, or, collapsed, a parent re-created in the same interval).
- A move keeps each moved item's ``id`` and gives each moved file a new
  ``rev``, as Dropbox does (a move is a new revision at the new path).
"""

from collections.abc import Iterable

from relaybox.sandbox import ids, paths
from relaybox.sandbox.content_hash import content_hash
from relaybox.sandbox.model import Change, Node
from relaybox.sandbox.types import JSON


class LookupFailure(Exception):
    """A ``LookupError`` (``not_found``, ``not_folder``, ``malformed_path``, ...)."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.error: JSON = {".tag": tag}


class WriteFailure(Exception):
    """A ``WriteError`` such as ``conflict/file``."""

    def __init__(self, tag: str, conflict: str | None = None) -> None:
        super().__init__(tag)
        self.error: JSON = {".tag": tag}
        if conflict is not None:
            self.error[tag] = {".tag": conflict}


class RelocationFailure(Exception):
    """A ``RelocationError`` (``from_lookup``, ``to``, ``cant_move_folder_into_itself``...)."""

    def __init__(self, error: JSON) -> None:
        super().__init__(error[".tag"])
        self.error = error


def _autorenamed(path: str, taken: Iterable[str]) -> str:
    """``/a/b (1).txt`` style: the first free variant of ``path``."""
    used = set(taken)
    folder, leaf = paths.parent(path), paths.name(path)
    stem, dot, ext = leaf.rpartition(".")
    if not stem:
        stem, dot, ext = leaf, "", ""
    n = 1
    while True:
        candidate = f"{folder}/{stem} ({n}){dot}{ext}"
        if candidate.lower() not in used:
            return candidate
        n += 1


class FileTree:
    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.by_id: dict[str, str] = {}
        self.log: list[Change] = []
        self.rev_serial = 0

    # ---------------------------------------------------------------- lookups

    def resolve(self, path: str) -> str:
        """The ``path_lower`` that ``path`` (a path or an ``id:``) names."""
        if path.startswith("id:"):
            found = self.by_id.get(path)
            if found is None:
                raise LookupFailure("not_found")
            return found
        try:
            return paths.clean(path).lower()
        except paths.MalformedPath:
            raise LookupFailure("malformed_path") from None

    def lookup(self, path: str) -> Node:
        lower = self.resolve(path)
        node = self.nodes.get(lower)
        if node is None:
            raise LookupFailure("not_found")
        return node

    def descendants(self, lower: str) -> list[Node]:
        prefix = lower + "/"
        return sorted(
            (n for key, n in self.nodes.items() if key.startswith(prefix)),
            key=lambda n: n.path_lower,
        )

    # ------------------------------------------------------------ change log

    def _record(self, entry: JSON, *, descendant: bool = False) -> None:
        self.log.append(Change(entry["path_lower"], entry, descendant))

    def _put(self, node: Node) -> None:
        self.nodes[node.path_lower] = node
        self.by_id[node.id] = node.path_lower
        self._record(node.metadata())

    def _remove(self, node: Node, *, descendant: bool) -> None:
        del self.nodes[node.path_lower]
        self.by_id.pop(node.id, None)
        self._record(node.deleted_metadata(), descendant=descendant)

    def _next_rev(self) -> str:
        self.rev_serial += 1
        return ids.new_rev(self.rev_serial)

    def _ensure_parents(self, path: str) -> None:
        for ancestor in paths.ancestors(path):
            existing = self.nodes.get(ancestor.lower())
            if existing is None:
                self._put(Node(ids.new_file_id(), ancestor, is_folder=True))
            elif not existing.is_folder:
                raise WriteFailure("conflict", "file_ancestor")

    def _check_parents(self, path: str) -> None:
        for ancestor in paths.ancestors(path):
            existing = self.nodes.get(ancestor.lower())
            if existing is not None and not existing.is_folder:
                raise WriteFailure("conflict", "file_ancestor")

    def _write_path(self, path: str) -> str:
        if path.startswith("id:"):
            return self.lookup(path).path_display
        try:
            return paths.clean(path, allow_root=False)
        except paths.MalformedPath:
            raise WriteFailure("malformed_path") from None

    # ------------------------------------------------------------- mutations

    def upload(
        self,
        path: str,
        content: bytes,
        *,
        mode: str = "add",
        update_rev: str | None = None,
        autorename: bool = False,
        client_modified: str | None = None,
    ) -> Node:
        """Write a file; ``mode`` is ``add``, ``overwrite`` or ``update``."""
        target = self._write_path(path)
        self._check_parents(target)
        digest = content_hash(content)
        existing = self.nodes.get(target.lower())
        if existing is not None:
            if not existing.is_folder and existing.content_hash == digest:
                return existing  # identical content: Dropbox makes no new revision
            replace = not existing.is_folder and (
                mode == "overwrite" or (mode == "update" and update_rev == existing.rev)
            )
            if replace:
                existing.content = content
                existing.content_hash = digest
                existing.rev = self._next_rev()
                existing.server_modified = ids.timestamp()
                existing.client_modified = client_modified or existing.server_modified
                self._put(existing)
                return existing
            if not autorename:
                raise WriteFailure("conflict", "folder" if existing.is_folder else "file")
            target = _autorenamed(target, self.nodes)
        self._ensure_parents(target)
        now = ids.timestamp()
        node = Node(
            ids.new_file_id(),
            target,
            is_folder=False,
            rev=self._next_rev(),
            content=content,
            content_hash=digest,
            client_modified=client_modified or now,
            server_modified=now,
        )
        self._put(node)
        return node

    def create_folder(self, path: str, *, autorename: bool = False) -> Node:
        target = self._write_path(path)
        self._check_parents(target)
        existing = self.nodes.get(target.lower())
        if existing is not None:
            if not autorename:
                raise WriteFailure("conflict", "folder" if existing.is_folder else "file")
            target = _autorenamed(target, self.nodes)
        self._ensure_parents(target)
        node = Node(ids.new_file_id(), target, is_folder=True)
        self._put(node)
        return node

    def delete(self, path: str) -> Node:
        """Delete a file, or a folder with everything in it; answers what was deleted."""
        node = self.lookup(path)
        if node.path_lower == "":
            raise LookupFailure("malformed_path")
        inner = self.descendants(node.path_lower)
        self._remove(node, descendant=False)
        for child in reversed(inner):
            self._remove(child, descendant=True)
        return node

    def move(self, from_path: str, to_path: str, *, autorename: bool = False) -> Node:
        try:
            node = self.lookup(from_path)
        except LookupFailure as failure:
            raise RelocationFailure({".tag": "from_lookup", "from_lookup": failure.error}) from None
        try:
            target = self._write_path(to_path)
            self._check_parents(target)
        except WriteFailure as failure:
            raise RelocationFailure({".tag": "to", "to": failure.error}) from None
        except LookupFailure:
            raise RelocationFailure({".tag": "to", "to": {".tag": "malformed_path"}}) from None
        old_lower, new_lower = node.path_lower, target.lower()
        if target == node.path_display:
            raise RelocationFailure({".tag": "duplicated_or_nested_paths"})
        if node.is_folder and new_lower.startswith(old_lower + "/"):
            raise RelocationFailure({".tag": "cant_move_folder_into_itself"})
        if new_lower != old_lower and new_lower in self.nodes:
            if not autorename:
                kind = "folder" if self.nodes[new_lower].is_folder else "file"
                raise RelocationFailure(
                    {".tag": "to", "to": {".tag": "conflict", "conflict": {".tag": kind}}}
                )
            target = _autorenamed(target, self.nodes)
            new_lower = target.lower()
        self._ensure_parents(target)
        inner = self.descendants(old_lower)
        if new_lower != old_lower:
            self._remove(node, descendant=False)
            for child in reversed(inner):
                self._remove(child, descendant=True)
        else:
            for child in [node, *inner]:
                del self.nodes[child.path_lower]
        node.path_display = target
        self._put_moved(node)
        for child in inner:
            child.path_display = target + child.path_display[len(old_lower) :]
            self._put_moved(child)
        return node

    def _put_moved(self, node: Node) -> None:
        if not node.is_folder:
            node.rev = self._next_rev()
        self._put(node)

    # --------------------------------------------------------------- reading

    def _state_at(self, position: int) -> tuple[dict[str, JSON], dict[str, JSON]]:
        """Entries and deleted entries as they stood after ``log[:position]``."""
        live: dict[str, JSON] = {}
        gone: dict[str, JSON] = {}
        for change in self.log[:position]:
            if change.deleted:
                live.pop(change.path_lower, None)
                gone[change.path_lower] = change.entry
            else:
                live[change.path_lower] = change.entry
                gone.pop(change.path_lower, None)
        return live, gone

    def listing(
        self, base_lower: str, recursive: bool, include_deleted: bool, position: int
    ) -> list[JSON]:
        """What ``list_folder`` shows of ``base_lower`` at log ``position``."""
        if position == len(self.log) and not include_deleted:
            live = {key: node.metadata() for key, node in self.nodes.items()}
            gone: dict[str, JSON] = {}
        else:
            live, gone = self._state_at(position)
        found = {k: v for k, v in live.items() if paths.in_scope(k, base_lower, recursive)}
        if include_deleted:
            found.update(
                (k, v) for k, v in gone.items() if paths.in_scope(k, base_lower, recursive)
            )
        return [found[key] for key in sorted(found)]

    def _covered(
        self, change: Change, base_lower: str, recursive: bool, latest: dict[str, int] | None
    ) -> bool:
        """Whether a descendant deletion goes without saying: its parent's is listed.

        ``latest`` (collapsed listings): the last change of each path listed.
        Uncollapsed, the parent's deletion was logged just before by the same
        delete or move.
        """
        if not change.descendant:
            return False
        parent = paths.parent(change.path_lower)
        if not paths.in_scope(parent, base_lower, recursive):
            return False
        return latest is None or (parent in latest and self.log[latest[parent]].deleted)

    def changes(
        self,
        position: int,
        base_lower: str,
        recursive: bool,
        include_descendants: bool,
        limit: int | None = None,
        *,
        collapse: bool = False,
    ) -> tuple[list[JSON], int, bool]:
        """Entries changed after ``position``: (entries, new position, has_more).

        ``collapse``: only the latest entry of each path (Dropbox's shape, see
        the module docstring).
        """
        scoped = [
            index
            for index in range(position, len(self.log))
            if paths.in_scope(self.log[index].path_lower, base_lower, recursive)
        ]
        latest: dict[str, int] | None = None
        if collapse:
            latest = {self.log[index].path_lower: index for index in scoped}
            scoped = sorted(latest.values())
        entries: list[JSON] = []
        for index in scoped:
            change = self.log[index]
            if not include_descendants and self._covered(change, base_lower, recursive, latest):
                continue
            if limit is not None and len(entries) >= limit:
                return entries, index, True
            entries.append(change.entry)
        return entries, len(self.log), False

    def has_changes(
        self, position: int, base_lower: str, recursive: bool, include_descendants: bool
    ) -> bool:
        entries, _, _ = self.changes(position, base_lower, recursive, include_descendants, 1)
        return bool(entries)
