"""The sandbox's pure parts: content hash, paths, file tree and change log, cursors."""

import hashlib

import pytest

from relaybox.sandbox import cursors, paths
from relaybox.sandbox.content_hash import BLOCK_SIZE, content_hash
from relaybox.sandbox.tree import FileTree, LookupFailure, RelocationFailure, WriteFailure


def test_content_hash_is_dropbox_block_hash() -> None:
    data = b"a" * BLOCK_SIZE + b"b" * 10
    blocks = hashlib.sha256(b"a" * BLOCK_SIZE).digest() + hashlib.sha256(b"b" * 10).digest()
    assert content_hash(data) == hashlib.sha256(blocks).hexdigest()
    assert content_hash(b"") == hashlib.sha256(b"").hexdigest()
    assert len(content_hash(b"x")) == 64


@pytest.mark.parametrize("bad", ["a", "/a//b", "/a/../b", "/./x"])
def test_malformed_paths_are_refused(bad: str) -> None:
    with pytest.raises(paths.MalformedPath):
        paths.clean(bad)


def test_path_scopes() -> None:
    assert paths.clean("/A/b/") == "/A/b"
    assert paths.in_scope("/a/b/c", "/a", recursive=True)
    assert paths.in_scope("/a", "/a", recursive=True)
    assert not paths.in_scope("/ab", "/a", recursive=True)
    assert paths.in_scope("/a/b", "/a", recursive=False)
    assert not paths.in_scope("/a/b/c", "/a", recursive=False)
    assert paths.in_scope("/x", "", recursive=False)
    assert paths.ancestors("/a/b/c.txt") == ["/a", "/a/b"]


def test_upload_creates_parents_and_records_each_change() -> None:
    tree = FileTree()
    node = tree.upload("/Docs/Sub/f.txt", b"hi")
    assert node.id.startswith("id:") and len(node.rev) >= 9
    assert [c.path_lower for c in tree.log] == ["/docs", "/docs/sub", "/docs/sub/f.txt"]
    assert tree.lookup("/docs/SUB/F.TXT") is node
    assert tree.lookup(node.id) is node


def test_upload_modes() -> None:
    tree = FileTree()
    first = tree.upload("/f.txt", b"one")
    assert tree.upload("/f.txt", b"one") is first  # identical content: no new revision
    assert len(tree.log) == 1
    with pytest.raises(WriteFailure) as conflict:
        tree.upload("/f.txt", b"two")
    assert conflict.value.error == {".tag": "conflict", "conflict": {".tag": "file"}}
    renamed = tree.upload("/f.txt", b"two", autorename=True)
    assert renamed.path_display == "/f (1).txt"
    old_rev = first.rev
    updated = tree.upload("/f.txt", b"three", mode="overwrite")
    assert updated.id == first.id and updated.rev != old_rev
    with pytest.raises(WriteFailure):
        tree.upload("/f.txt", b"four", mode="update", update_rev=old_rev)
    assert tree.upload("/f.txt", b"four", mode="update", update_rev=updated.rev).content == b"four"
    with pytest.raises(WriteFailure) as ancestor:
        tree.upload("/f.txt/inner", b"x")
    assert ancestor.value.error["conflict"] == {".tag": "file_ancestor"}


def test_folder_delete_logs_descendants_as_descendant_changes() -> None:
    tree = FileTree()
    tree.upload("/d/a.txt", b"a")
    tree.upload("/d/e/b.txt", b"b")
    start = len(tree.log)
    tree.delete("/d")
    plain, _, _ = tree.changes(start, "", True, include_descendants=False)
    assert plain == [{".tag": "deleted", "name": "d", "path_lower": "/d", "path_display": "/d"}]
    every, _, _ = tree.changes(start, "", True, include_descendants=True)
    assert [e["path_lower"] for e in every] == ["/d", "/d/e/b.txt", "/d/e", "/d/a.txt"]
    assert all("id" not in e for e in every)
    assert tree.nodes == {}


def test_folder_move_keeps_ids_and_reports_new_paths() -> None:
    tree = FileTree()
    inner = tree.upload("/a/x/f.txt", b"f")
    inner_rev = inner.rev
    folder = tree.lookup("/a")
    start = len(tree.log)
    moved = tree.move("/a", "/B")
    assert moved.id == folder.id
    entries, _, _ = tree.changes(start, "", True, include_descendants=False)
    assert [(e[".tag"], e["path_display"]) for e in entries] == [
        ("deleted", "/a"),
        ("folder", "/B"),
        ("folder", "/B/x"),
        ("file", "/B/x/f.txt"),
    ]
    assert entries[3]["id"] == inner.id
    assert entries[3]["rev"] != inner_rev  # a move is a new revision, as in Dropbox
    assert int(entries[3]["rev"], 16) > int(inner_rev, 16)
    with pytest.raises(RelocationFailure) as into_itself:
        tree.move("/B", "/B/x/y")
    assert into_itself.value.error == {".tag": "cant_move_folder_into_itself"}
    with pytest.raises(RelocationFailure) as missing:
        tree.move("/nope", "/z")
    assert missing.value.error == {".tag": "from_lookup", "from_lookup": {".tag": "not_found"}}


def test_case_only_rename_is_an_update_in_place() -> None:
    tree = FileTree()
    node = tree.upload("/readme.txt", b"r")
    start = len(tree.log)
    tree.move("/readme.txt", "/README.txt")
    entries, _, _ = tree.changes(start, "", True, include_descendants=False)
    assert [(e[".tag"], e["path_display"], e["id"]) for e in entries] == [
        ("file", "/README.txt", node.id)
    ]


def test_listing_at_an_old_position_replays_the_log() -> None:
    tree = FileTree()
    tree.upload("/a.txt", b"a")
    position = len(tree.log)
    tree.upload("/b.txt", b"b")
    tree.delete("/a.txt")
    assert [e["name"] for e in tree.listing("", False, False, position)] == ["a.txt"]
    now = tree.listing("", False, True, len(tree.log))
    assert [(e[".tag"], e["name"]) for e in now] == [("deleted", "a.txt"), ("file", "b.txt")]


def test_changes_are_scoped_and_paged() -> None:
    tree = FileTree()
    for name in "abc":
        tree.upload(f"/in/{name}.txt", name.encode())
    tree.upload("/out/z.txt", b"z")
    entries, position, more = tree.changes(0, "/in", True, False, limit=2)
    assert [e["path_lower"] for e in entries] == ["/in", "/in/a.txt"] and more
    entries, position, more = tree.changes(position, "/in", True, False, limit=2)
    assert [e["path_lower"] for e in entries] == ["/in/b.txt", "/in/c.txt"]
    entries, _, more = tree.changes(position, "/in", True, False, limit=2)
    assert entries == [] and not more


def test_lookup_failures() -> None:
    tree = FileTree()
    with pytest.raises(LookupFailure) as missing:
        tree.lookup("/nope")
    assert missing.value.error == {".tag": "not_found"}
    with pytest.raises(LookupFailure) as malformed:
        tree.lookup("nope")
    assert malformed.value.error == {".tag": "malformed_path"}


def test_cursor_round_trip_and_garbage() -> None:
    cursor = cursors.Cursor("dbid:x", "/a", True, False, 10, 5, 0)
    assert cursors.decode(cursor.encode()) == cursor
    for garbage in ["", "AAE!!!", "AAEeyJ4IjoxfQ", "xyz"]:
        with pytest.raises(cursors.BadCursor):
            cursors.decode(garbage)


def _shape(entries: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(e[".tag"], e["path_lower"]) for e in entries]


def test_collapsed_changes_list_each_path_once_in_its_latest_state() -> None:
    tree = FileTree()
    tree.upload("/keep.txt", b"1")
    tree.upload("/gone.txt", b"g")
    start = len(tree.log)
    first_rev = tree.upload("/new.txt", b"1").rev
    edited = tree.upload("/new.txt", b"2", mode="overwrite")
    tree.upload("/keep.txt", b"2", mode="overwrite")
    tree.upload("/tmp.txt", b"t")
    tree.delete("/tmp.txt")
    tree.delete("/gone.txt")
    every, _, _ = tree.changes(start, "", True, False)
    assert _shape(every) == [
        ("file", "/new.txt"),
        ("file", "/new.txt"),
        ("file", "/keep.txt"),
        ("file", "/tmp.txt"),
        ("deleted", "/tmp.txt"),
        ("deleted", "/gone.txt"),
    ]
    assert every[0]["rev"] == first_rev != every[1]["rev"]
    collapsed, position, more = tree.changes(start, "", True, False, collapse=True)
    assert _shape(collapsed) == [
        ("file", "/new.txt"),
        ("file", "/keep.txt"),
        ("deleted", "/tmp.txt"),
        ("deleted", "/gone.txt"),
    ]
    assert collapsed[0]["rev"] == edited.rev and position == len(tree.log) and not more


def test_collapsed_changes_page_without_losing_or_repeating_a_path() -> None:
    tree = FileTree()
    start = len(tree.log)
    for name in "abcd":
        tree.upload(f"/{name}.txt", b"1")
    tree.upload("/a.txt", b"2", mode="overwrite")  # a's latest change is now the last one
    seen: list[tuple[object, object]] = []
    position, more = start, True
    while more:
        page, position, more = tree.changes(position, "", True, False, 2, collapse=True)
        assert len(page) <= 2
        seen += [(e["path_lower"], e["rev"]) for e in page]
    assert seen == [(f"/{n}.txt", tree.lookup(f"/{n}.txt").rev) for n in ["b", "c", "d", "a"]]


def test_collapsed_folder_delete_reports_descendants_only_when_uncovered() -> None:
    tree = FileTree()
    tree.upload("/d/x.txt", b"x")
    start = len(tree.log)
    tree.delete("/d")
    collapsed, _, _ = tree.changes(start, "", True, False, collapse=True)
    assert _shape(collapsed) == [("deleted", "/d")]
    every, _, _ = tree.changes(start, "", True, True, collapse=True)
    assert _shape(every) == [("deleted", "/d"), ("deleted", "/d/x.txt")]
    tree.create_folder("/d")  # re-created: the deleted folder no longer covers its child
    collapsed, _, _ = tree.changes(start, "", True, False, collapse=True)
    assert _shape(collapsed) == [("deleted", "/d/x.txt"), ("folder", "/d")]
    plain, _, _ = tree.changes(start, "", True, False)
    assert _shape(plain) == [("deleted", "/d"), ("folder", "/d")]


def test_a_listed_folder_deleted_from_above_is_reported() -> None:
    tree = FileTree()
    tree.upload("/a/b/c.txt", b"c")
    start = len(tree.log)
    tree.delete("/a")
    entries, _, _ = tree.changes(start, "/a/b", True, False)
    assert _shape(entries) == [("deleted", "/a/b")]
    flat, _, _ = tree.changes(start, "/a/b", False, False)
    assert _shape(flat) == [("deleted", "/a/b/c.txt")]
