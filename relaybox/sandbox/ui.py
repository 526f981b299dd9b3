"""``/_sandbox/ui``: a page to look at an account's files and change them by hand."""

from urllib.parse import urlencode

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from relaybox.sandbox.state import Sandbox
from relaybox.sandbox.tree import FileTree, LookupFailure, RelocationFailure, WriteFailure


def routes(sandbox: Sandbox, templates: Jinja2Templates) -> list[Route]:
    def back(request: Request, account_id: str, message: str = "") -> Response:
        query = {"account_id": account_id, **({"message": message} if message else {})}
        url = f"{request.scope.get('root_path', '')}/_sandbox/ui?{urlencode(query)}"
        return RedirectResponse(url, 303)

    async def page(request: Request) -> Response:
        account_id = request.query_params.get("account_id", "")
        if account_id not in sandbox.accounts:
            account_id = next(iter(sandbox.accounts), "")
        rows = []
        if account_id:
            tree = sandbox.trees[account_id]
            for node in sorted(tree.nodes.values(), key=lambda n: n.path_lower):
                rows.append({"node": node, "depth": node.path_display.count("/") - 1})
        context = {
            "root": request.scope.get("root_path", ""),
            "accounts": list(sandbox.accounts.values()),
            "account_id": account_id,
            "rows": rows,
            "message": request.query_params.get("message", ""),
        }
        return templates.TemplateResponse(request, "ui.html", context)

    async def act(request: Request) -> Response:
        form = await request.form()
        action = request.path_params["action"]
        if action == "accounts":
            email = str(form.get("email", "")).strip()
            if not email:
                return back(request, "", "Give an email")
            return back(request, sandbox.create_account(email).account_id, f"Created {email}")
        account_id = str(form.get("account_id", ""))
        if account_id not in sandbox.accounts:
            return back(request, "", "Choose an account")
        text = {k: v for k, v in form.items() if isinstance(v, str)}
        try:
            if action == "upload":
                upload = form.get("file")
                if not isinstance(upload, UploadFile) or not upload.filename:
                    return back(request, account_id, "Choose a file")
                content = await upload.read()
                folder = text.get("folder", "").strip().rstrip("/")
                if folder and not folder.startswith("/"):
                    folder = "/" + folder
                path = f"{folder}/{upload.filename}"

                def write(tree: FileTree) -> object:
                    return tree.upload(path, content, mode="overwrite")

                sandbox.change(account_id, write)
                return back(request, account_id, f"Uploaded {path}")
            if action == "folder":
                path = text.get("path", "").strip()
                sandbox.change(account_id, lambda tree: tree.create_folder(path))
                return back(request, account_id, f"Created {path}")
            if action == "move":
                source, target = text.get("from_path", ""), text.get("to_path", "").strip()
                sandbox.change(account_id, lambda tree: tree.move(source, target))
                return back(request, account_id, f"Moved {source} to {target}")
            if action == "delete":
                path = text.get("path", "")
                sandbox.change(account_id, lambda tree: tree.delete(path))
                return back(request, account_id, f"Deleted {path}")
        except (LookupFailure, WriteFailure, RelocationFailure) as failure:
            return back(request, account_id, f"Failed: {failure}")
        return Response("Unknown action", 404, media_type="text/plain")

    return [
        Route("/_sandbox/ui", page, methods=["GET"]),
        Route("/_sandbox/ui/{action}", act, methods=["POST"]),
    ]
