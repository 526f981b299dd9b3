"""``/_sandbox/ui``: a page to look at an account's Drive and change it by hand.

Plain HTML forms (the only script: submit on account change, confirm a delete); each
action answers a redirect back to the page with a message. Every change goes through the
sandbox as an API call would, so it shows in ``changes.list`` and pushes to the account's
channels.
"""

from typing import Any

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from relaybox.gdrive_sandbox import ids
from relaybox.gdrive_sandbox.drive import Drive
from relaybox.gdrive_sandbox.errors import GoogleError
from relaybox.gdrive_sandbox.model import FOLDER, DriveFile
from relaybox.gdrive_sandbox.routes_control import guess_type
from relaybox.gdrive_sandbox.state import DriveSandbox
from relaybox.sandbox_kit.pages import FilesPage, human_size

PAGE = FilesPage("account")


def _row(drive: Drive, item: DriveFile) -> dict[str, Any]:
    path = drive.path(item)
    return {
        "file": item,
        "path": path,
        "depth": path.count("/") - 1,
        "size": "" if item.is_folder else human_size(len(item.content)),
        "modified": ids.rfc3339(item.modified_time).replace("T", " ")[:19],
    }


def _tree_order(drive: Drive) -> list[DriveFile]:
    """Folders before their content, siblings by name."""
    out: list[DriveFile] = []

    def walk(folder_id: str) -> None:
        for child in sorted(drive.children(folder_id), key=lambda f: (f.name.lower(), f.id)):
            out.append(child)
            if child.is_folder:
                walk(child.id)

    walk(drive.root_id)
    return out


ACTIONS = {
    "folder": "create folder",
    "file": "create file",
    "rename": "rename",
    "move": "move",
    "trash": "trash",
    "untrash": "restore",
    "delete": "delete",
}


def routes(sandbox: DriveSandbox, templates: Jinja2Templates) -> list[Route]:
    back = PAGE.back

    async def page(request: Request) -> Response:
        account_id = PAGE.account_id(request, sandbox.accounts)
        rows: list[dict[str, Any]] = []
        folders: list[dict[str, str]] = []
        channels: list[dict[str, Any]] = []
        now = sandbox.now()
        if account_id:
            drive = sandbox.drives[account_id]
            rows = [_row(drive, f) for f in _tree_order(drive)]
            folders = [{"id": drive.root_id, "path": "/ (My Drive)"}] + [
                {"id": r["file"].id, "path": r["path"]}
                for r in rows
                if r["file"].is_folder and not r["file"].trashed
            ]
            channels = [
                {
                    "channel": c,
                    "expires": ids.rfc3339(c.expiration_ms / 1000).replace("T", " ")[:19],
                    "state": "stopped" if c.stopped else "live" if c.live(now) else "expired",
                }
                for c in sandbox.channels.values()
                if c.permission_id == account_id
            ]
        context = {
            **PAGE.context(request, sandbox.accounts, account_id),
            "rows": rows,
            "folders": folders,
            "files": sum(1 for r in rows if not r["file"].is_folder),
            "folder_count": sum(1 for r in rows if r["file"].is_folder),
            "channels": channels,
            "now": ids.rfc3339(now).replace("T", " ")[:19],
        }
        return templates.TemplateResponse(request, "ui.html", context)

    async def act(request: Request, action: str, form: FormData, text: dict[str, str]) -> Response:
        if action not in ACTIONS:
            return Response("Unknown action", 404, media_type="text/plain")
        account_id = text.get("account", "")
        if account_id not in sandbox.accounts:
            return back(request, "", "Failed: choose an account", failed=True)
        drive = sandbox.drives[account_id]
        try:
            message = _apply(sandbox, account_id, drive, action, text)
        except GoogleError as error:
            return back(
                request, account_id, f"Failed to {ACTIONS[action]}: {error.message}", failed=True
            )
        return back(request, account_id, message)

    return PAGE.routes(
        page, act, lambda email, name: sandbox.create_account(email, name).permission_id
    )


def _apply(
    sandbox: DriveSandbox, account_id: str, drive: Drive, action: str, text: dict[str, str]
) -> str:
    now = sandbox.now()
    name, parent = text.get("name", ""), text.get("parent") or drive.root_id
    if action in ("folder", "file"):
        if not name:
            raise GoogleError(400, "give a name", "required")
        content = text.get("content", "").encode()
        mime = FOLDER if action == "folder" else text.get("mime_type") or guess_type(name)
        item = sandbox.change(
            account_id,
            lambda d: d.create(name, now, mime_type=mime, parents=[parent], content=content),
        )
        return f"Created {drive.path(item)}"
    item = drive.get(text.get("file_id", ""))
    before = drive.path(item)
    if action == "rename":
        sandbox.change(account_id, lambda d: d.update(item.id, now, name=name or item.name))
        return f"Renamed {before} to {drive.path(item)}"
    if action == "move":
        sandbox.change(
            account_id,
            lambda d: d.update(item.id, now, add_parents=[parent], remove_parents=item.parents),
        )
        return f"Moved {before} to {drive.path(item)}"
    if action in ("trash", "untrash"):
        sandbox.change(account_id, lambda d: d.update(item.id, now, trashed=action == "trash"))
        return f"{'Trashed' if action == 'trash' else 'Restored'} {before}"
    sandbox.change(account_id, lambda d: d.delete(item.id, now))
    return f"Deleted {before} for good"
