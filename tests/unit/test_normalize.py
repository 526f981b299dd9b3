"""Dropbox entries (through the Dropbox connector's mapping) + index -> standardized
events (SPEC section 3)."""

from __future__ import annotations

from typing import Any

from relaybox.connectors.base import Change
from relaybox.connectors.dropbox import change_of
from relaybox.core import normalize as core
from relaybox.core.normalize import Changes, Index, IndexedObject


def file(path: str, fid: str, rev: str = "a1b2c3d4e5") -> dict[str, Any]:
    return {".tag": "file", "id": fid, "path_lower": path.lower(), "path_display": path, "rev": rev}


def folder(path: str, fid: str) -> dict[str, Any]:
    return {".tag": "folder", "id": fid, "path_lower": path.lower(), "path_display": path}


def deleted(path: str) -> dict[str, Any]:
    return {".tag": "deleted", "path_lower": path.lower(), "path_display": path}


def neutral(entries: list[dict[str, Any]]) -> list[Change]:
    return [change_of(entry) for entry in entries]


def normalize(entries: list[dict[str, Any]], index: Index) -> Changes:
    return core.normalize(neutral(entries), index)


def reconcile(entries: list[dict[str, Any]], index: Index) -> Changes:
    return core.reconcile(neutral(entries), index)


def summary(entries: list[dict[str, Any]], index: Index) -> list[tuple[Any, ...]]:
    changes = normalize(entries, index)
    return [(e.event_type, e.object_type, e.object_id, e.path, e.new_path) for e in changes.events]


def known(*objs: IndexedObject) -> Index:
    return Index(objs)


def obj(path: str, fid: str, tag: str = "file", rev: str | None = "a1b2c3d4e5") -> IndexedObject:
    return IndexedObject(
        fid,
        path.lower(),
        path,
        "folder" if tag == "folder" else "file",
        rev if tag == "file" else None,
    )


def test_unknown_file_and_folder_are_created() -> None:
    index = Index()
    assert summary([folder("/Docs", "id:d"), file("/Docs/a.txt", "id:a")], index) == [
        ("CREATED", "folders", "id:d", "/Docs", None),
        ("CREATED", "files", "id:a", "/Docs/a.txt", None),
    ]
    assert index.by_path("/docs/a.txt") == obj("/Docs/a.txt", "id:a")


def test_new_rev_of_known_file_is_updated_and_same_rev_is_nothing() -> None:
    index = known(obj("/a.txt", "id:a", rev="000000001"))
    assert summary([file("/a.txt", "id:a", rev="000000001")], index) == []
    assert summary([file("/a.txt", "id:a", rev="000000002")], index) == [
        ("UPDATED", "files", "id:a", "/a.txt", None)
    ]


def test_move_is_one_update_with_new_path_whatever_the_entry_order() -> None:
    for entries in (
        [deleted("/a.txt"), file("/b/a.txt", "id:a")],
        [file("/b/a.txt", "id:a"), deleted("/a.txt")],
    ):
        index = known(obj("/a.txt", "id:a"))
        assert summary(entries, index) == [("UPDATED", "files", "id:a", "/a.txt", "/b/a.txt")]
        assert index.by_path("/a.txt") is None
        assert index.by_id("id:a") == obj("/b/a.txt", "id:a")


def test_case_only_rename_is_a_move() -> None:
    index = known(obj("/a.txt", "id:a"))
    assert summary([file("/A.txt", "id:a")], index) == [
        ("UPDATED", "files", "id:a", "/a.txt", "/A.txt")
    ]


def test_folder_rename_reports_the_folder() -> None:
    index = known(obj("/old", "id:f", "folder"))
    assert summary([deleted("/old"), folder("/new", "id:f")], index) == [
        ("UPDATED", "folders", "id:f", "/old", "/new")
    ]


def test_delete_of_known_path_uses_index_id_and_type() -> None:
    index = known(obj("/a.txt", "id:a"), obj("/f", "id:f", "folder"))
    assert summary([deleted("/a.txt"), deleted("/f")], index) == [
        ("DELETED", "files", "id:a", "/a.txt", None),
        ("DELETED", "folders", "id:f", "/f", None),
    ]
    assert len(index) == 0


def test_delete_of_unknown_path_is_nothing() -> None:
    assert summary([deleted("/never.txt")], Index()) == []


def test_folder_delete_is_one_event_with_or_without_descendant_entries() -> None:
    def tree() -> Index:
        return known(
            obj("/f", "id:f", "folder"),
            obj("/f/a.txt", "id:a"),
            obj("/f/sub", "id:s", "folder"),
            obj("/f/sub/b.txt", "id:b"),
            obj("/other.txt", "id:o"),
        )

    expected = [("DELETED", "folders", "id:f", "/f", None)]
    only_folder = tree()
    assert summary([deleted("/f")], only_folder) == expected
    children_after = tree()
    assert (
        summary([deleted("/f"), deleted("/f/a.txt"), deleted("/f/sub/b.txt")], children_after)
        == expected
    )
    children_first = tree()
    assert (
        summary([deleted("/f/sub/b.txt"), deleted("/f/sub"), deleted("/f")], children_first)
        == expected
    )
    for index in (only_folder, children_after, children_first):
        assert [o.object_id for o in index] == ["id:o"]


def test_delete_then_recreate_at_same_path() -> None:
    index = known(obj("/a.txt", "id:a"))
    assert summary([deleted("/a.txt"), file("/a.txt", "id:new")], index) == [
        ("DELETED", "files", "id:a", "/a.txt", None),
        ("CREATED", "files", "id:new", "/a.txt", None),
    ]


def test_changes_record_index_upserts_and_removals() -> None:
    index = known(obj("/f", "id:f", "folder"), obj("/f/a.txt", "id:a"))
    changes = normalize([deleted("/f"), file("/n.txt", "id:n")], index)
    assert changes.removals == {"id:f", "id:a"}
    assert set(changes.upserts) == {"id:n"}


def test_reconcile_reports_only_the_differences() -> None:
    index = known(
        obj("/keep.txt", "id:k", rev="000000001"),
        obj("/edit.txt", "id:e", rev="000000001"),
        obj("/moved.txt", "id:m"),
        obj("/gone", "id:g", "folder"),
        obj("/gone/x.txt", "id:x"),
        obj("/replaced.txt", "id:r"),
    )
    listing = [
        file("/keep.txt", "id:k", rev="000000001"),
        file("/edit.txt", "id:e", rev="000000002"),
        file("/sub/moved.txt", "id:m"),
        file("/replaced.txt", "id:r2"),
        file("/new.txt", "id:n"),
    ]
    changes = reconcile(listing, index)
    assert [(e.event_type, e.object_id, e.path, e.new_path) for e in changes.events] == [
        ("DELETED", "id:g", "/gone", None),
        ("DELETED", "id:r", "/replaced.txt", None),
        ("UPDATED", "id:e", "/edit.txt", None),
        ("UPDATED", "id:m", "/moved.txt", "/sub/moved.txt"),
        ("CREATED", "id:r2", "/replaced.txt", None),
        ("CREATED", "id:n", "/new.txt", None),
    ]
    assert reconcile(listing, index).events == []


def test_child_deleted_before_its_folder_moved_is_reported() -> None:
    def tree() -> Index:
        return known(obj("/a", "id:A", "folder"), obj("/a/x", "id:X"), obj("/a/y", "id:Y"))

    expected = [
        ("DELETED", "files", "id:X", "/a/x", None),
        ("UPDATED", "folders", "id:A", "/a", "/b"),
        ("UPDATED", "files", "id:Y", "/a/y", "/b/y"),
    ]
    listed = tree()
    entries = [deleted("/a/x"), deleted("/a"), folder("/b", "id:A"), file("/b/y", "id:Y")]
    assert summary(entries, listed) == expected
    # Dropbox may leave the child's deleted entry out: the move still accounts for it.
    collapsed = tree()
    assert sorted(
        summary([deleted("/a"), folder("/b", "id:A"), file("/b/y", "id:Y")], collapsed)
    ) == sorted(expected)
    for index in (listed, collapsed):
        assert index.by_id("id:X") is None
        assert sorted(o.path_lower for o in index) == ["/b", "/b/y"]


def test_path_taken_by_a_new_object_without_a_deleted_entry() -> None:
    index = known(obj("/a", "id:A", "folder"), obj("/a/c.txt", "id:C"))
    assert summary([file("/a", "id:F")], index) == [
        ("DELETED", "folders", "id:A", "/a", None),
        ("CREATED", "files", "id:F", "/a", None),
    ]
    assert [o.object_id for o in index] == ["id:F"]


def test_child_moved_out_of_a_deleted_folder_is_a_move() -> None:
    def tree() -> Index:
        return known(obj("/a", "id:A", "folder"), obj("/a/x", "id:X"))

    expected = [
        ("DELETED", "folders", "id:A", "/a", None),
        ("UPDATED", "files", "id:X", "/a/x", "/c/x"),
    ]
    assert summary([deleted("/a"), file("/c/x", "id:X")], tree()) == expected
    assert [
        (e.event_type, e.object_id, e.path, e.new_path)
        for e in reconcile([file("/c/x", "id:X")], tree()).events
    ] == [(t, i, p, n) for t, _, i, p, n in expected]
