"""Placing changes whose parent folder a pass neither holds nor read
(connectors/paging.with_parents, through the Google Drive connector's `folders`).

Drive's change feed lists each file at its latest change, so a folder renamed after files
were put in it comes after them, possibly in a later pass; a listing split in two can
bring a folder after its content. The folders are read with `files.get` (the account's
root once per account) and placed ahead of their content.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from relaybox.connectors.base import Change
from relaybox.connectors.googledrive import GoogleDriveConnector, change_of
from relaybox.connectors.googledrive.client import FOLDER, DriveClient, GoogleURLs
from relaybox.connectors.paging import MAX_PARENT_LEVELS, MAX_PARENT_LOOKUPS, with_parents
from relaybox.core.errors import TokenExpired
from relaybox.core.normalize import Index, normalize
from relaybox.pipeline.changes import LeaseLost

ROOT = "0AROOTfolder"


class FakeDrive:
    """`files.get` over a dict of file resources; `asked` records the ids read."""

    def __init__(self) -> None:
        self.files: dict[str, dict[str, Any]] = {}
        self.asked: list[str] = []
        self.fields: list[str] = []
        self.status: int | None = None  # answer every call with this status instead

    def folder(self, fid: str, name: str, parent: str = ROOT, **extra: Any) -> dict[str, Any]:
        self.files[fid] = {"id": fid, "name": name, "mimeType": FOLDER, "parents": [parent]}
        self.files[fid].update(extra)
        return self.files[fid]

    def handle(self, request: httpx.Request) -> httpx.Response:
        prefix = "/drive/v3/files/"
        assert request.method == "GET" and request.url.path.startswith(prefix)
        fid = request.url.path[len(prefix) :]
        self.asked.append(fid)
        self.fields.append(request.url.params["fields"])
        if self.status is not None:
            return httpx.Response(self.status, json={"error": {"code": self.status}})
        if fid == "root":
            return httpx.Response(200, json={"id": ROOT})
        found = self.files.get(fid)
        if found is None:
            error = {"code": 404, "message": f"File not found: {fid}.", "errors": []}
            return httpx.Response(404, json={"error": error})
        return httpx.Response(200, json=found)

    def connector(self) -> GoogleDriveConnector:
        http = httpx.AsyncClient(transport=httpx.MockTransport(self.handle))
        return GoogleDriveConnector(
            DriveClient(GoogleURLs.one("https://drive.test"), http, retries=0)
        )


def file(fid: str, name: str, parent: str = ROOT, md5: str = "m1") -> Change:
    raw = {"id": fid, "name": name, "mimeType": "text/plain", "parents": [parent]}
    return change_of({**raw, "md5Checksum": md5})


def events(changes: list[Change], index: Index) -> list[tuple[str, str, str, str | None]]:
    normalized = normalize(changes, index, moves_list_descendants=False)
    return [(e.event_type, e.object_type, e.path, e.new_path) for e in normalized.events]


def held_by(index: Index) -> Any:
    async def held(ids: set[str]) -> set[str]:
        return {i for i in ids if index.by_id(i) is not None}

    return held


async def test_a_file_whose_folder_comes_in_a_later_pass_is_placed_below_it() -> None:
    drive = FakeDrive()
    photos = drive.folder("d-photos", "Photos")
    connector, index = drive.connector(), Index()
    first = [file("f-x", "x.txt", parent="d-photos")]
    # Without reading the folder, the file would be CREATED at /x.txt, for good.
    assert events(first, Index()) == [("CREATED", "files", "/x.txt", None)]

    placed = await with_parents(connector, "t", "acct", first, held_by(index))
    assert events(placed, index) == [
        ("CREATED", "folders", "/Photos", None),
        ("CREATED", "files", "/Photos/x.txt", None),
    ]
    # The folder's own change, in the next pass, finds it known where it is; an edit of
    # the file afterwards is an edit, not a move.
    later = await with_parents(connector, "t", "acct", [change_of(photos)], held_by(index))
    assert events(later, index) == []
    edited = await with_parents(
        connector, "t", "acct", [file("f-x", "x.txt", "d-photos", md5="m2")], held_by(index)
    )
    assert events(edited, index) == [("UPDATED", "files", "/Photos/x.txt", None)]
    # The root was read once, the folder once; its fields are the ones relaybox places by.
    assert drive.asked == ["root", "d-photos"]
    assert drive.fields == ["id", "id,name,mimeType,parents,trashed"]


async def test_parents_are_read_up_to_a_held_one_and_the_root_once_per_account() -> None:
    drive = FakeDrive()
    drive.folder("d-b", "B", parent="d-a")
    drive.folder("d-c", "C", parent="d-b")
    index = Index()
    events([change_of(drive.folder("d-a", "A"))], index)  # A is indexed already
    connector = drive.connector()
    placed = await with_parents(
        connector, "t", "acct", [file("f-x", "x.txt", parent="d-c")], held_by(index)
    )
    assert [c.object_id for c in placed] == ["d-b", "d-c", "f-x"]  # ancestors first
    assert drive.asked == ["root", "d-c", "d-b"]
    assert events(placed, index) == [
        ("CREATED", "folders", "/A/B", None),
        ("CREATED", "folders", "/A/B/C", None),
        ("CREATED", "files", "/A/B/C/x.txt", None),
    ]
    # Top-level items of the same account cost no call; another account's root is read.
    top = [file("f-y", "y.txt"), change_of(drive.folder("d-z", "Z"))]
    assert await with_parents(connector, "t2", "acct", top, held_by(index)) == top
    assert drive.asked == ["root", "d-c", "d-b"]
    assert await with_parents(connector, "t3", "other", top, held_by(index)) == top
    assert drive.asked == ["root", "d-c", "d-b", "root"]


async def test_parents_in_the_batch_or_the_index_and_changes_with_paths_are_not_read() -> None:
    drive = FakeDrive()
    connector = drive.connector()
    index = Index()
    events([change_of(drive.folder("d-held", "Held"))], index)
    batch = [
        change_of(drive.folder("d-new", "New")),
        file("f-1", "1.txt", parent="d-new"),
        file("f-2", "2.txt", parent="d-held"),
        Change("f-3", None, removed=True),
        Change("f-4", "file", "/dropbox/a.txt", "/Dropbox/a.txt"),
    ]
    assert await with_parents(connector, "t", "acct", batch, held_by(index)) == batch
    assert drive.asked == ["root"]  # what "New" sits in: nothing is read but its id


async def test_a_gone_or_trashed_parent_leaves_its_children_at_the_root() -> None:
    drive = FakeDrive()
    drive.folder("d-trashed", "Old", trashed=True)
    changes = [file("f-1", "1.txt", parent="d-gone"), file("f-2", "2.txt", parent="d-trashed")]
    placed = await with_parents(drive.connector(), "t", "acct", changes)
    assert placed == changes
    assert sorted(e[2] for e in events(placed, Index())) == ["/1.txt", "/2.txt"]
    assert sorted(drive.asked) == ["d-gone", "d-trashed", "root"]


async def test_other_errors_fail_the_read_as_any_call_does() -> None:
    drive = FakeDrive()
    drive.status = 401
    with pytest.raises(TokenExpired):
        await with_parents(drive.connector(), "t", "acct", [file("f-1", "1.txt", "d-1")])


async def test_the_climb_and_the_lookups_are_bounded() -> None:
    drive = FakeDrive()
    depth = MAX_PARENT_LEVELS + 10
    for level in range(depth):
        drive.folder(f"d-{level}", f"L{level}", parent=f"d-{level + 1}")
    await with_parents(drive.connector(), "t", "acct", [file("f-x", "x.txt", parent="d-0")])
    assert len(drive.asked) == 1 + MAX_PARENT_LEVELS  # the root, then one per level

    wide = FakeDrive()
    many = [file(f"f-{n}", "x.txt", parent=f"d-{n}") for n in range(MAX_PARENT_LOOKUPS + 50)]
    for n in range(len(many)):
        wide.folder(f"d-{n}", f"D{n}")
    placed = await with_parents(wide.connector(), "t", "acct", many)
    assert len(placed) == len(many) + MAX_PARENT_LOOKUPS
    assert len(wide.asked) == 1 + MAX_PARENT_LOOKUPS


async def test_a_pass_keeps_its_lease_while_it_climbs_and_stops_when_it_lost_it() -> None:
    drive = FakeDrive()
    drive.folder("d-a", "A")
    drive.folder("d-b", "B", parent="d-a")
    renewals: list[int] = []

    async def renew() -> None:
        renewals.append(len(drive.asked))

    changes = [file("f-1", "1.txt", parent="d-b")]
    placed = await with_parents(drive.connector(), "t", "acct", changes, renew=renew)
    assert [c.object_id for c in placed] == ["d-a", "d-b", "f-1"]
    # Between one level's reads and the next (the first level read the root and B; the
    # last asks only for the root, which is known by then).
    assert renewals == [2, 3]

    async def lost() -> None:
        raise LeaseLost("instance 1: the pass lease was taken over")

    with pytest.raises(LeaseLost):
        await with_parents(drive.connector(), "t", "acct", changes, renew=lost)
