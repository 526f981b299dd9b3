"""``/_sandbox/ui``: a page to look at an account's files and change them by hand.

Plain HTML forms (the only script: submit on account change, confirm a
delete); each action answers a redirect back to the page with a message.
"""

from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from relaybox.sandbox.errors import error_summary
from relaybox.sandbox.model import Node
from relaybox.sandbox.state import Sandbox
from relaybox.sandbox.tree import FileTree, LookupFailure, RelocationFailure, WriteFailure


def human_size(size: int) -> str:
    """``512 B``, ``1.5 KB``, ``12.0 MB``."""
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


def _row(node: Node) -> dict[str, Any]:
    return {
        "node": node,
        "depth": node.path_display.count("/") - 1,
        "size": "" if node.is_folder else human_size(len(node.content)),
        "modified": node.server_modified.replace("T", " ").rstrip("Z"),
    }


def routes(sandbox: Sandbox, templates: Jinja2Templates) -> list[Route]:
    def back(
        request: Request, account_id: str, message: str = "", failed: bool = False
    ) -> Response:
        query = {"account_id": account_id, **({"message": message} if message else {})}
        if failed:
            query["failed"] = "1"
        url = f"{request.scope.get('root_path', '')}/_sandbox/ui?{urlencode(query)}"
        return RedirectResponse(url, 303)

    async def page(request: Request) -> Response:
        account_id = request.query_params.get("account_id", "")
        if account_id not in sandbox.accounts:
            account_id = next(iter(sandbox.accounts), "")
        nodes: list[Node] = []
        if account_id:
            nodes = sorted(sandbox.trees[account_id].nodes.values(), key=lambda n: n.path_lower)
        folders = sum(1 for n in nodes if n.is_folder)
        context = {
            "root": request.scope.get("root_path", ""),
            "accounts": list(sandbox.accounts.values()),
            "account_id": account_id,
            "account": sandbox.accounts.get(account_id),
            "rows": [_row(n) for n in nodes],
            "files": len(nodes) - folders,
            "folders": folders,
            "message": request.query_params.get("message", ""),
            "failed": request.query_params.get("failed") == "1",
        }
        return templates.TemplateResponse(request, "ui.html", context)

    async def act(request: Request) -> Response:
        form = await request.form()
        action = request.path_params["action"]
        text = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
        if action == "accounts":
            email = text.get("email", "")
            if not email:
                return back(request, "", "Failed: give an email", failed=True)
            account = sandbox.create_account(email, text.get("display_name") or None)
            return back(request, account.account_id, f"Account {email} is ready")
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

    return [
        Route("/_sandbox/ui", page, methods=["GET"]),
        Route("/_sandbox/ui/{action}", act, methods=["POST"]),
    ]
