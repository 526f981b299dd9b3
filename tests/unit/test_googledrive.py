"""Google Drive's wire format through its connector (connectors/googledrive), and the
events its neutral changes make against the index (core/normalize.py)."""

from __future__ import annotations

from typing import Any

import pytest

from relaybox.connectors.googledrive import (
    DriveChannels,
    change_of,
    changes_page,
    listing_cursor,
    parse_listing_cursor,
)
from relaybox.connectors.googledrive.client import FOLDER
from relaybox.core.errors import InvalidInput
from relaybox.core.normalize import Index, IndexedObject, normalize, reconcile

ROOT = "0AROOTfolder"


def folder(fid: str, name: str, parent: str = ROOT, **extra: Any) -> dict[str, Any]:
    return {"id": fid, "name": name, "mimeType": FOLDER, "parents": [parent], **extra}


def file(fid: str, name: str, parent: str = ROOT, md5: str = "m1", **extra: Any) -> dict[str, Any]:
    return {
        "id": fid,
        "name": name,
        "mimeType": "text/plain",
        "parents": [parent],
        "md5Checksum": md5,
        **extra,
    }


def events(files: list[dict[str, Any]], index: Index) -> list[tuple[Any, ...]]:
    changes = normalize([change_of(f) for f in files], index, moves_list_descendants=False)
    return [(e.event_type, e.object_type, e.path, e.new_path) for e in changes.events]


def indexed(*files: dict[str, Any]) -> Index:
    """The index after relaybox listed these files."""
    index = Index()
    normalize([change_of(f) for f in files], index, moves_list_descendants=False)
    return index


def path_of(index: Index, fid: str) -> str | None:
    held = index.by_id(fid)
    return held.path_display if held else None


# --- the mapping -----------------------------------------------------------------------


def test_a_file_maps_to_a_change_with_its_parent_and_content_version() -> None:
    change = change_of(file("f1", "a.txt", parent="d1", md5="abc", headRevisionId="r9"))
    assert (change.object_id, change.kind, change.name, change.parent_id) == (
        "f1",
        "file",
        "a.txt",
        "d1",
    )
    assert change.version == "abc"  # the content's checksum before the revision id
    assert change.path_lower is None and not change.removed
    no_checksum = change_of({**file("f2", "doc"), "md5Checksum": None, "modifiedTime": "t1"})
    assert no_checksum.version == "t1"  # a Google Doc has no checksum
    assert change_of(folder("d1", "Reports")).kind == "folder"
    assert change_of(folder("d1", "Reports")).version is None


def test_trashed_and_removed_are_removals_by_id() -> None:
    assert change_of(file("f1", "a.txt", trashed=True)).removed
    page = changes_page(
        {
            "changes": [
                {"fileId": "f1", "removed": True},
                {"fileId": "f2", "removed": False, "file": file("f2", "b.txt")},
                {"driveId": "shared-1", "changeType": "drive"},  # not a file: skipped
            ],
            "newStartPageToken": "42",
        }
    )
    assert [(c.object_id, c.removed) for c in page.changes] == [("f1", True), ("f2", False)]
    assert (page.cursor, page.has_more) == ("42", False)
    more = changes_page({"changes": [], "nextPageToken": "17"})
    assert (more.cursor, more.has_more) == ("17", True)


def test_a_listing_cursor_keeps_the_start_token_and_the_next_page() -> None:
    cursor = listing_cursor("100", "page:2/x")
    assert parse_listing_cursor(cursor) == ("100", "page:2/x")
    assert parse_listing_cursor("100") is None  # a page token
    with pytest.raises(InvalidInput):
        parse_listing_cursor("list:not json")


def test_channel_messages_are_read_from_their_headers() -> None:
    channels = DriveChannels(client=None)  # type: ignore[arg-type]
    headers = {
        "x-goog-channel-id": "c1",
        "x-goog-channel-token": "secret",
        "x-goog-resource-state": "change",
        "x-goog-message-number": "3",
        "x-goog-resource-id": "r1",
    }
    message = channels.message(headers)
    assert (message.channel_id, message.token, message.changed) == ("c1", "secret", True)
    assert message.raw["messageNumber"] == "3" and "secret" not in str(message.raw)
    assert not channels.message({**headers, "x-goog-resource-state": "sync"}).changed
    with pytest.raises(InvalidInput):
        channels.message({"x-goog-channel-token": "secret"})


# --- the events ------------------------------------------------------------------------


def test_paths_come_from_parents_whatever_the_listing_order() -> None:
    listing = [file("f1", "q1.txt", parent="d2"), folder("d2", "2026", parent="d1")]
    listing.append(folder("d1", "Reports"))
    assert sorted(events(listing, Index())) == [
        ("CREATED", "files", "/Reports/2026/q1.txt", None),
        ("CREATED", "folders", "/Reports", None),
        ("CREATED", "folders", "/Reports/2026", None),
    ]


def test_a_renamed_folder_takes_its_content_along() -> None:
    index = indexed(folder("d1", "Reports"), file("f1", "q1.txt", parent="d1"))
    assert events([folder("d1", "Archive")], index) == [
        ("UPDATED", "folders", "/Reports", "/Archive")
    ]
    assert path_of(index, "f1") == "/Archive/q1.txt"
    # The file's next change is placed below the folder's new path.
    assert events([file("f1", "q1.txt", parent="d1", md5="m2")], index) == [
        ("UPDATED", "files", "/Archive/q1.txt", None)
    ]


def test_a_folder_removed_by_id_is_one_event_whatever_comes_with_it() -> None:
    def index() -> Index:
        return indexed(folder("d1", "Reports"), file("f1", "q1.txt", parent="d1"))

    alone = events([{"id": "d1", "trashed": True}], index())
    with_child = changes_page(
        {
            "changes": [{"fileId": "f1", "removed": True}, {"fileId": "d1", "removed": True}],
            "newStartPageToken": "9",
        }
    )
    changes = normalize(with_child.changes, index(), moves_list_descendants=False)
    both = [(e.event_type, e.object_type, e.path, e.new_path) for e in changes.events]
    assert alone == both == [("DELETED", "folders", "/Reports", None)]
    assert changes.removals == {"d1", "f1"}


def test_reconcile_after_a_void_page_token_reports_only_differences() -> None:
    index = indexed(folder("d1", "Reports"), file("f1", "q1.txt", parent="d1"))
    listing = [change_of(folder("d1", "Reports")), change_of(file("f2", "new.txt"))]
    changes = reconcile(listing, index, moves_list_descendants=False)
    assert sorted((e.event_type, e.path) for e in changes.events) == [
        ("CREATED", "/new.txt"),
        ("DELETED", "/Reports/q1.txt"),
    ]


def test_a_folder_renamed_only_in_case_takes_its_content_along() -> None:
    index = indexed(folder("d1", "reports"), file("f1", "q1.txt", parent="d1"))
    assert events([folder("d1", "Reports")], index) == [
        ("UPDATED", "folders", "/reports", "/Reports")
    ]
    assert path_of(index, "f1") == "/Reports/q1.txt"


def test_same_named_files_in_one_folder_are_two_objects() -> None:
    """Drive lets two files share a name in a folder ("Untitled document" often does):
    neither replaces the other, and each is updated and deleted on its own."""
    index = indexed(folder("d1", "Notes"))
    assert events(
        [file("f1", "Untitled", parent="d1"), file("f2", "Untitled", parent="d1")], index
    ) == [
        ("CREATED", "files", "/Notes/Untitled", None),
        ("CREATED", "files", "/Notes/Untitled", None),
    ]
    assert events([file("f1", "Untitled", parent="d1", md5="m2")], index) == [
        ("UPDATED", "files", "/Notes/Untitled", None)
    ]
    assert events([{"id": "f2", "trashed": True}], index) == [
        ("DELETED", "files", "/Notes/Untitled", None)
    ]
    assert path_of(index, "f1") == "/Notes/Untitled" and path_of(index, "f2") is None


def test_same_named_folders_keep_their_own_content() -> None:
    index = indexed(
        folder("d1", "Photos"),
        folder("d2", "Photos"),
        file("f1", "a.jpg", parent="d1"),
        file("f2", "b.jpg", parent="d2"),
    )
    assert events([{"id": "d1", "trashed": True}], index) == [
        ("DELETED", "folders", "/Photos", None)
    ]
    assert path_of(index, "f1") is None
    assert path_of(index, "f2") == "/Photos/b.jpg"
    assert events([folder("d2", "Pictures")], index) == [
        ("UPDATED", "folders", "/Photos", "/Pictures")
    ]
    assert path_of(index, "f2") == "/Pictures/b.jpg"


def test_reconcile_keeps_both_twins() -> None:
    listing = [
        folder("d1", "Photos"),
        folder("d2", "Photos"),
        file("f1", "a.jpg", parent="d1"),
        file("f2", "a.jpg", parent="d2"),
    ]
    index = indexed(*listing)
    assert len(index) == 4
    changes = reconcile([change_of(f) for f in listing], index, moves_list_descendants=False)
    assert changes.events == []


def test_an_index_keyed_by_path_before_id_chains_is_rekeyed_without_events() -> None:
    """Drive rows written when the index was keyed by lowercased path: the next changes
    find them known where they are shown, report only what really changed, and leave
    them keyed by ids, content included."""
    index = Index(
        [
            IndexedObject("d1", "/docs", "/Docs", "folder"),
            IndexedObject("f1", "/docs/a.txt", "/Docs/a.txt", "file", "m1"),
            IndexedObject("f2", "/docs/b.txt", "/Docs/b.txt", "file", "m1"),
        ]
    )
    assert events([folder("d1", "Docs"), file("f1", "a.txt", parent="d1")], index) == []
    assert events([file("f2", "b.txt", parent="d1", md5="m2")], index) == [
        ("UPDATED", "files", "/Docs/b.txt", None)
    ]
    assert [index.by_id(i).path_lower for i in ("d1", "f1", "f2")] == [  # type: ignore[union-attr]
        "/d1",
        "/d1/f1",
        "/d1/f2",
    ]
