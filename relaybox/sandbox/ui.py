"""``/_sandbox/ui``: a page to look at an account's files and change them by hand.

Plain HTML forms (the only script: submit on account change, confirm a
delete); each action answers a redirect back to the page with a message.
"""

from typing import Any

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from relaybox.sandbox.errors import error_summary
from relaybox.sandbox.model import Node
from relaybox.sandbox.state import Sandbox
from relaybox.sandbox.tree import FileTree, LookupFailure, RelocationFailure, WriteFailure
from relaybox.sandbox_kit.pages import FilesPage, human_size

PAGE = FilesPage("account_id")


def _row(node: Node) -> dict[str, Any]:
    return {
        "node": node,
        "depth": node.path_display.count("/") - 1,
        "size": "" if node.is_folder else human_size(len(node.content)),
        "modified": node.server_modified.replace("T", " ").rstrip("Z"),
    }


def routes(sandbox: Sandbox, templates: Jinja2Templates) -> list[Route]:
    back = PAGE.back

    async def page(request: Request) -> Response:
        account_id = PAGE.account_id(request, sandbox.accounts)
        nodes: list[Node] = []
        if account_id:
            nodes = sorted(sandbox.trees[account_id].nodes.values(), key=lambda n: n.path_lower)
        folders = sum(1 for n in nodes if n.is_folder)
        context = {
            **PAGE.context(request, sandbox.accounts, account_id),
            "rows": [_row(n) for n in nodes],
            "files": len(nodes) - folders,
            "folders": folders,
        }
        return templates.TemplateResponse(request, "ui.html", context)

    async def act(request: Request, action: str, form: FormData, text: dict[str, str]) -> Response:
        account_id = text.get("account_id", "")
        if account_id not in sandbox.accounts:
            return back(request, "", "Failed: choose an account", failed=True)
        doing = action
        try:
            if action == "upload":
                upload = form.get("file")
                if not isinstance(upload, UploadFile) or not upload.filename:
                    return back(request, account_id, "Failed: choose a file", failed=True)
                content = await upload.read()
                folder = text.get("folder", "").rstrip("/")
                if folder and not folder.startswith("/"):
                    folder = "/" + folder
                path = f"{folder}/{upload.filename}"
                doing = f"upload {path}"

                def write(tree: FileTree) -> object:
                    return tree.upload(path, content, mode="overwrite")

                sandbox.change(account_id, write)
                return back(request, account_id, f"Uploaded {path}")
            if action == "folder":
                path = text.get("path", "")
                if path and not path.startswith("/"):
                    path = "/" + path
                doing = f"create folder {path}"
                sandbox.change(account_id, lambda tree: tree.create_folder(path))
                return back(request, account_id, f"Created folder {path}")
            if action == "move":
                source, target = text.get("from_path", ""), text.get("to_path", "")
                if target and not target.startswith("/"):
                    target = "/" + target
                doing = f"move {source} to {target}"
                sandbox.change(account_id, lambda tree: tree.move(source, target))
                return back(request, account_id, f"Moved {source} to {target}")
            if action == "delete":
                path = text.get("path", "")
                doing = f"delete {path}"
                sandbox.change(account_id, lambda tree: tree.delete(path))
                return back(request, account_id, f"Deleted {path}")
        except (LookupFailure, WriteFailure, RelocationFailure) as failure:
            reason = error_summary(failure.error).removesuffix("/..")
            return back(request, account_id, f"Failed to {doing}: {reason}", failed=True)
        return Response("Unknown action", 404, media_type="text/plain")

    return PAGE.routes(
        page, act, lambda email, name: sandbox.create_account(email, name).account_id
    )
