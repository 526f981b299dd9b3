"""Dropbox API v2 routes: users, files, list_folder with cursors, longpoll, revoke."""

from typing import Any

from starlette.routing import Route

from relaybox.sandbox import cursors
from relaybox.sandbox.content_hash import content_hash
from relaybox.sandbox.cursors import Cursor
from relaybox.sandbox.errors import RouteError
from relaybox.sandbox.rpc import Call, Handler, endpoint
from relaybox.sandbox.state import Sandbox
from relaybox.sandbox.tree import FileTree, LookupFailure, RelocationFailure, WriteFailure
from relaybox.sandbox.types import JSON

DEFAULT_LIMIT = 2000
LONGPOLL_DEFAULT, LONGPOLL_MIN, LONGPOLL_MAX = 30, 30, 480


def _struct(metadata: JSON) -> JSON:
    """A ``FileMetadata``/``FolderMetadata`` struct: the union tag dropped."""
    return {k: v for k, v in metadata.items() if k != ".tag"}


def _folder_base(call: Call, tree: FileTree, path: str) -> str:
    """The ``path_lower`` of the folder a listing names (409 if it is none)."""
    if path == "/":
        raise call.bad(
            'request body: path: Specify the root folder as an empty string rather than as "/".'
        )
    try:
        base = tree.resolve(path)
        if base:
            node = tree.lookup(path)
            if not node.is_folder:
                raise LookupFailure("not_folder")
    except LookupFailure as failure:
        raise RouteError({".tag": "path", "path": failure.error}) from None
    return base


def _listing_cursor(call: Call) -> Cursor:
    tree = call.sandbox.trees[call.account.account_id]
    base = _folder_base(call, tree, call.text("path"))
    return Cursor(
        account_id=call.account.account_id,
        path_lower=base,
        recursive=call.flag("recursive"),
        include_deleted=call.flag("include_deleted"),
        limit=call.number("limit", DEFAULT_LIMIT, 1, DEFAULT_LIMIT),
        position=len(tree.log),
        epoch=call.sandbox.cursor_epoch,
    )


def _page(tree: FileTree, cursor: Cursor, offset: int) -> JSON:
    entries = tree.listing(
        cursor.path_lower, cursor.recursive, cursor.include_deleted, cursor.position
    )
    end = offset + cursor.limit
    more = end < len(entries)
    following = cursor.at(cursor.position, end if more else None)
    return {"entries": entries[offset:end], "cursor": following.encode(), "has_more": more}


def _decode_cursor(call: Call, text: str) -> Cursor:
    """A cursor of this account and epoch (400 if foreign, 409 ``reset`` if voided)."""
    try:
        cursor = cursors.decode(text)
    except cursors.BadCursor:
        raise call.bad('Invalid "cursor" parameter') from None
    tree = call.sandbox.trees.get(cursor.account_id)
    if tree is None or (call.token is not None and cursor.account_id != call.token.account_id):
        raise call.bad('Invalid "cursor" parameter')
    if cursor.epoch < call.sandbox.cursor_epoch or cursor.position > len(tree.log):
        raise RouteError({".tag": "reset"})
    return cursor


async def get_current_account(call: Call) -> JSON:
    return call.account.full_account()


async def list_folder(call: Call) -> JSON:
    cursor = _listing_cursor(call)
    return _page(call.sandbox.trees[cursor.account_id], cursor, 0)


async def list_folder_continue(call: Call) -> JSON:
    cursor = _decode_cursor(call, call.text("cursor", ""))
    tree = call.sandbox.trees[cursor.account_id]
    if cursor.offset is not None:
        return _page(tree, cursor, cursor.offset)
    entries, position, more = tree.changes(
        cursor.position,
        cursor.path_lower,
        cursor.recursive,
        call.account.report_descendant_deletes,
        cursor.limit,
        collapse=call.account.collapse_changes,
    )
    return {"entries": entries, "cursor": cursor.at(position).encode(), "has_more": more}


async def get_latest_cursor(call: Call) -> JSON:
    return {"cursor": _listing_cursor(call).encode()}


async def longpoll(call: Call) -> JSON:
    cursor = _decode_cursor(call, call.text("cursor", ""))
    timeout = call.number("timeout", LONGPOLL_DEFAULT, LONGPOLL_MIN, LONGPOLL_MAX)
    sandbox = call.sandbox
    tree = sandbox.trees[cursor.account_id]
    account = sandbox.account(cursor.account_id)

    def has_changes() -> bool:
        if cursor.offset is not None:
            return True
        return tree.has_changes(
            cursor.position,
            cursor.path_lower,
            cursor.recursive,
            account.report_descendant_deletes,
        )

    if call.fault is not None and call.fault.status == "backoff":
        return {"changes": has_changes(), "backoff": call.fault.retry_after or 5}
    seconds = timeout * sandbox.longpoll_time_scale
    changed = await sandbox.wait_for_change(cursor.account_id, has_changes, seconds)
    return {"changes": changed}


async def get_metadata(call: Call) -> JSON:
    path = call.text("path")
    if path in ("", "/"):
        raise call.bad("request body: path: The root folder is unsupported.")
    tree = call.sandbox.trees[call.account.account_id]
    try:
        return tree.lookup(path).metadata()
    except LookupFailure as failure:
        if call.flag("include_deleted") and failure.error[".tag"] == "not_found":
            lower = tree.resolve(path) if not path.startswith("id:") else ""
            for change in reversed(tree.log):
                if change.path_lower == lower:
                    if change.deleted:
                        return change.entry
                    break
        raise RouteError({".tag": "path", "path": failure.error}) from None


def _write_mode(call: Call) -> tuple[str, str | None]:
    mode: Any = call.arg.get("mode", "add")
    if isinstance(mode, dict):
        tag = mode.get(".tag")
        if tag == "update":
            rev = mode.get("update")
            if not isinstance(rev, str):
                raise call.bad("request body: mode: update needs a rev")
            return "update", rev
        mode = tag
    if mode not in ("add", "overwrite"):
        raise call.bad("request body: mode: expected add, overwrite or update")
    return str(mode), None


async def upload(call: Call) -> JSON:
    path = call.text("path")
    mode, rev = _write_mode(call)
    expected = call.arg.get("content_hash")
    if expected is not None and expected != content_hash(call.body):
        raise RouteError({".tag": "content_hash_mismatch"})
    client_modified = call.arg.get("client_modified")
    try:
        node = call.sandbox.change(
            call.account.account_id,
            lambda tree: tree.upload(
                path,
                call.body,
                mode=mode,
                update_rev=rev,
                autorename=call.flag("autorename"),
                client_modified=client_modified if isinstance(client_modified, str) else None,
            ),
        )
    except (WriteFailure, LookupFailure) as failure:
        reason = failure.error
        raise RouteError({".tag": "path", "reason": reason, "upload_session_id": ""}) from None
    return _struct(node.metadata())


async def create_folder(call: Call) -> JSON:
    path, autorename = call.text("path"), call.flag("autorename")
    try:
        node = call.sandbox.change(
            call.account.account_id, lambda tree: tree.create_folder(path, autorename=autorename)
        )
    except (WriteFailure, LookupFailure) as failure:
        raise RouteError({".tag": "path", "path": failure.error}) from None
    return {"metadata": _struct(node.metadata())}


async def delete(call: Call) -> JSON:
    path = call.text("path")
    if path in ("", "/"):
        raise RouteError({".tag": "path_lookup", "path_lookup": {".tag": "malformed_path"}})
    try:
        node = call.sandbox.change(call.account.account_id, lambda tree: tree.delete(path))
    except LookupFailure as failure:
        raise RouteError({".tag": "path_lookup", "path_lookup": failure.error}) from None
    return {"metadata": node.metadata()}


async def move(call: Call) -> JSON:
    source, target = call.text("from_path"), call.text("to_path")
    autorename = call.flag("autorename")
    try:
        node = call.sandbox.change(
            call.account.account_id,
            lambda tree: tree.move(source, target, autorename=autorename),
        )
    except RelocationFailure as failure:
        raise RouteError(failure.error) from None
    return {"metadata": node.metadata()}


async def revoke(call: Call) -> None:
    assert call.token is not None
    call.sandbox.tokens.revoke(call.token)
    call.sandbox.save()


ROUTES: list[tuple[str, Handler, dict[str, bool]]] = [
    ("users/get_current_account", get_current_account, {}),
    ("files/list_folder", list_folder, {}),
    ("files/list_folder/continue", list_folder_continue, {}),
    ("files/list_folder/get_latest_cursor", get_latest_cursor, {}),
    ("files/list_folder/longpoll", longpoll, {"auth": False}),
    ("files/get_metadata", get_metadata, {}),
    ("files/upload", upload, {"upload": True}),
    ("files/create_folder_v2", create_folder, {}),
    ("files/delete_v2", delete, {}),
    ("files/move_v2", move, {}),
    ("auth/token/revoke", revoke, {}),
]


def routes(sandbox: Sandbox) -> list[Route]:
    return [
        Route(f"/2/{name}", endpoint(sandbox, name, handler, **options), methods=["POST"])
        for name, handler, options in ROUTES
    ]
