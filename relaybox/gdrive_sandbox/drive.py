"""One account's My Drive: its files and folders, and the change log behind ``changes.list``.

Every operation that changes a file appends to the log. ``changes.list`` shows, from a
position on, each file's latest change only (Drive's change feed names a file once, in its
present state, however often it changed); a permanently deleted file is ``removed``; a
trashed one is a change whose file says ``trashed`` (so are the content of a trashed
folder, its descendants). Moving a folder is one change, of the folder: its content keeps
its parents.
"""

from collections.abc import Iterable, Iterator

from relaybox.gdrive_sandbox import ids
from relaybox.gdrive_sandbox.errors import GoogleError, bad_request, file_not_found, forbidden
from relaybox.gdrive_sandbox.model import DEFAULT_MIME, FOLDER, DriveFile, LoggedChange

ROOT_ALIAS = "root"
MAX_NAME = 32767


class Drive:
    def __init__(self, root_id: str, created: float) -> None:
        self.root_id = root_id
        self.serial = 1
        """The last ``version`` given out (versions increase with every change of a file)."""
        root = DriveFile(root_id, "My Drive", FOLDER, [], created, created, 1)
        self.files: dict[str, DriveFile] = {root_id: root}
        self.log: list[LoggedChange] = []
        self.order: list[str] = []
        """File ids in creation order (the root aside): listings follow it."""

    # ---------------------------------------------------------------- reading

    @property
    def root(self) -> DriveFile:
        return self.files[self.root_id]

    def get(self, file_id: str) -> DriveFile:
        """The file (``root`` names the My Drive folder), or 404 ``notFound``."""
        found = self.files.get(self.root_id if file_id == ROOT_ALIAS else file_id)
        if found is None:
            raise file_not_found(file_id)
        return found

    def all_files(self) -> Iterator[DriveFile]:
        """Every file and folder but the root, in creation order."""
        return (self.files[i] for i in self.order)

    def children(self, folder_id: str) -> list[DriveFile]:
        return [f for f in self.all_files() if folder_id in f.parents]

    def descendants(self, folder_id: str) -> list[DriveFile]:
        """Everything below ``folder_id``, parents before their content."""
        found, queue = [], [folder_id]
        while queue:
            current = queue.pop(0)
            for child in self.children(current):
                found.append(child)
                if child.is_folder:
                    queue.append(child.id)
        return found

    def path(self, item: DriveFile) -> str:
        """``/Folder/name`` through first parents (for people: Drive has no paths)."""
        names: list[str] = []
        current: DriveFile | None = item
        seen: set[str] = set()
        while current is not None and current.id != self.root_id and current.id not in seen:
            seen.add(current.id)
            names.append(current.name)
            current = self.files.get(current.parents[0]) if current.parents else None
        return "/" + "/".join(reversed(names))

    def find(self, path: str) -> DriveFile:
        """The first file at ``/a/b`` (names may repeat in Drive), or 404."""
        current = self.root
        for name in [part for part in path.split("/") if part]:
            match = next((c for c in self.children(current.id) if c.name == name), None)
            if match is None:
                raise file_not_found(path)
            current = match
        return current

    # ---------------------------------------------------------------- changes

    def latest(self) -> int:
        """The log position after the last change."""
        return len(self.log)

    def changes(
        self, start: int, page_size: int, include_removed: bool
    ) -> tuple[list[LoggedChange], int | None]:
        """Up to ``page_size`` latest-per-file changes from ``start``; the position to go
        on from (None when none remain)."""
        last = {change.file_id: position for position, change in enumerate(self.log)}
        page: list[LoggedChange] = []
        for position in range(start, len(self.log)):
            change = self.log[position]
            if last[change.file_id] != position or (change.removed and not include_removed):
                continue
            if len(page) == page_size:
                return page, position
            page.append(change)
        return page, None

    def _logged(self, item: DriveFile, now: float, removed: bool = False) -> None:
        if not removed:
            self.serial += 1
            item.version = self.serial
        self.log.append(LoggedChange(item.id, now, removed))

    # ---------------------------------------------------------------- writing

    def _parent(self, parent_id: str) -> DriveFile:
        parent = self.get(parent_id)
        if not parent.is_folder:
            raise forbidden("The specified parent is not a folder.", "parentNotAFolder")
        return parent

    def create(
        self,
        name: str,
        now: float,
        *,
        mime_type: str | None = None,
        parents: Iterable[str] = (),
        content: bytes = b"",
    ) -> DriveFile:
        wanted = list(parents) or [self.root_id]
        if len(wanted) > 1:
            raise forbidden("Increasing the number of parents is not allowed.", "cannotAddParent")
        parent = self._parent(wanted[0])
        _check_name(name)
        item = DriveFile(
            ids.new_file_id(),
            name,
            mime_type or DEFAULT_MIME,
            [parent.id],
            now,
            now,
            0,
            content=b"" if mime_type == FOLDER else content,
            trashed=parent.trashed,
        )
        self.files[item.id] = item
        self.order.append(item.id)
        self._logged(item, now)
        return item

    def update(
        self,
        file_id: str,
        now: float,
        *,
        name: str | None = None,
        add_parents: Iterable[str] = (),
        remove_parents: Iterable[str] = (),
        content: bytes | None = None,
        trashed: bool | None = None,
    ) -> DriveFile:
        """Rename, move (``add_parents``/``remove_parents``), rewrite, trash or restore."""
        item = self._writable(file_id)
        parents = list(item.parents)
        for parent_id in remove_parents:
            resolved = self.root_id if parent_id == ROOT_ALIAS else parent_id
            if resolved in parents:
                parents.remove(resolved)
        for parent_id in add_parents:
            parent = self._parent(parent_id)
            if parent.id == item.id or parent.id in {d.id for d in self.descendants(item.id)}:
                raise bad_request("The parents field would create a cycle in the folder tree.")
            if parent.id not in parents:
                parents.append(parent.id)
        if len(parents) > 1:
            raise forbidden("Increasing the number of parents is not allowed.", "cannotAddParent")
        if not parents:
            raise bad_request("A file must keep a parent: name one in addParents.")
        if name is not None:
            _check_name(name)
        if content is not None and item.is_folder:
            raise forbidden("Folders have no content.", "fileNotDownloadable")
        changed = (
            (name is not None and name != item.name)
            or parents != item.parents
            or (content is not None and content != item.content)
        )
        if changed:
            item.name = item.name if name is None else name
            item.parents = parents
            item.content = item.content if content is None else content
            item.modified_time = now
            self._logged(item, now)
        if trashed is not None and trashed != item.trashed:
            self._set_trashed(item, trashed, now)
        return item

    def _writable(self, file_id: str) -> DriveFile:
        item = self.get(file_id)
        if item.id == self.root_id:
            raise forbidden(
                "The user does not have sufficient permissions for this file.",
                "insufficientFilePermissions",
            )
        return item

    def _set_trashed(self, item: DriveFile, trashed: bool, now: float) -> None:
        """Trash (or restore) ``item``; a folder's content follows, as implicitly trashed."""
        item.trashed, item.explicitly_trashed = trashed, trashed
        self._logged(item, now)
        if not item.is_folder:
            return
        for below in self.descendants(item.id):
            if trashed and not below.trashed:
                below.trashed = True
                self._logged(below, now)
            elif not trashed and below.trashed and not below.explicitly_trashed:
                below.trashed = False
                self._logged(below, now)

    def delete(self, file_id: str, now: float) -> list[DriveFile]:
        """Delete permanently, a folder with everything below it; answers what was removed."""
        item = self._writable(file_id)
        removed = [item, *self.descendants(item.id)]
        for gone in removed:
            del self.files[gone.id]
            self.order.remove(gone.id)
            self._logged(gone, now, removed=True)
        return removed


def _check_name(name: str) -> None:
    if len(name) > MAX_NAME:
        raise GoogleError(400, "The name is too long.", "invalid", location="name")
