"""The control API under ``/_sandbox``: set up apps, accounts, files and faults.

Not Dropbox's: it is how tests, demos and benchmarks drive the sandbox.
Errors are ``{"error": "..."}`` (400, 404) or, for file operations, the
Dropbox error union with 409.
"""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relaybox.sandbox.errors import RouteError, json_response
from relaybox.sandbox.faults import Fault
from relaybox.sandbox.model import Account
from relaybox.sandbox.state import Sandbox
from relaybox.sandbox.tree import LookupFailure, RelocationFailure, WriteFailure
from relaybox.sandbox.types import JSON
from relaybox.sandbox_kit import control
from relaybox.sandbox_kit.control import ControlError


def _failure(error: Exception) -> Response | None:
    """File operations answer Dropbox's error union with 409."""
    if isinstance(error, RouteError):
        return error.response()
    if isinstance(error, LookupFailure | WriteFailure | RelocationFailure):
        return RouteError(error.error).response()
    return None


def _account_json(account: Account) -> JSON:
    return {
        "account_id": account.account_id,
        "uid": account.uid,
        "email": account.email,
        "display_name": account.display_name,
        "report_descendant_deletes": account.report_descendant_deletes,
        "collapse_changes": account.collapse_changes,
    }


def routes(sandbox: Sandbox) -> list[Route]:
    def account_of(request: Request) -> Account:
        try:
            return sandbox.account(request.path_params["account_id"])
        except KeyError:
            raise ControlError(404, "account_id: no such account") from None

    def query_path(request: Request) -> str:
        path = request.query_params.get("path")
        if not path:
            raise ControlError(400, "path: required query parameter")
        return path

    async def create_app_(request: Request) -> JSON:
        data = await control.body(request)
        key, secret = control.text(data, "app_key"), control.text(data, "app_secret")
        assert key is not None and secret is not None
        webhook_uri = control.text(data, "webhook_uri", required=False)
        sandbox.register_app(key, secret, webhook_uri)
        return {"app_key": key, "webhook_uri": webhook_uri}

    async def list_apps(request: Request) -> JSON:
        return {
            "apps": [
                {"app_key": a.key, "webhook_uri": a.webhook_uri, "verified": a.webhook_verified}
                for a in sandbox.apps.values()
            ]
        }

    async def create_account(request: Request) -> JSON:
        data = await control.body(request)
        email = control.text(data, "email")
        assert email is not None
        return _account_json(
            sandbox.create_account(email, control.text(data, "display_name", False))
        )

    async def list_accounts(request: Request) -> JSON:
        return {"accounts": [_account_json(a) for a in sandbox.accounts.values()]}

    async def authorize(request: Request) -> JSON:
        data = await control.body(request)
        key, account_id = control.text(data, "app_key"), control.text(data, "account_id")
        assert key is not None and account_id is not None
        if key not in sandbox.apps:
            raise ControlError(404, "app_key: no such app")
        if account_id not in sandbox.accounts:
            raise ControlError(404, "account_id: no such account")
        code = sandbox.authorize(
            key,
            account_id,
            control.text(data, "redirect_uri", required=False),
            control.text(data, "token_access_type", required=False),
        )
        return {"code": code}

    async def put_file(request: Request) -> JSON:
        account, path = account_of(request), query_path(request)
        content = await request.body()
        node = sandbox.change(
            account.account_id, lambda tree: tree.upload(path, content, mode="overwrite")
        )
        return node.metadata()

    async def get_file(request: Request) -> Response:
        account, path = account_of(request), query_path(request)
        node = sandbox.trees[account.account_id].lookup(path)
        if node.is_folder:
            raise ControlError(400, "path: is a folder")
        return Response(node.content, media_type="application/octet-stream")

    async def delete_file(request: Request) -> JSON:
        account, path = account_of(request), query_path(request)
        node = sandbox.change(account.account_id, lambda tree: tree.delete(path))
        return node.metadata()

    async def create_folder(request: Request) -> JSON:
        account, data = account_of(request), await control.body(request)
        path = control.text(data, "path")
        assert path is not None
        node = sandbox.change(account.account_id, lambda tree: tree.create_folder(path))
        return node.metadata()

    async def move(request: Request) -> JSON:
        account, data = account_of(request), await control.body(request)
        source, target = control.text(data, "from_path"), control.text(data, "to_path")
        assert source is not None and target is not None
        node = sandbox.change(account.account_id, lambda tree: tree.move(source, target))
        return node.metadata()

    async def settings(request: Request) -> JSON:
        account, data = account_of(request), await control.body(request)
        setters = {
            "report_descendant_deletes": sandbox.set_report_descendant_deletes,
            "collapse_changes": sandbox.set_collapse_changes,
        }
        for name in data:
            if name not in setters:
                raise ControlError(400, f"{name}: unknown setting")
            if not isinstance(data[name], bool):
                raise ControlError(400, f"{name}: expected a boolean")
        for name, setter in setters.items():
            if name in data:
                setter(account.account_id, data[name])
        return {name: getattr(account, name) for name in setters}

    async def add_fault(request: Request) -> JSON:
        data = await control.body(request)
        status = data.get("status", 200)
        if status == "reset":
            sandbox.reset_cursors()
            return {"applied": "reset"}
        if status == "expire_tokens":
            sandbox.expire_tokens()
            return {"applied": "expire_tokens"}
        if not (status == "backoff" or (type(status) is int and 200 <= status <= 599)):
            raise ControlError(400, "status: an HTTP status, or reset, expire_tokens or backoff")
        route = control.text(data, "route")
        assert route is not None
        count, retry_after, delay_ms = (
            data.get("count", 1),
            data.get("retry_after"),
            data.get("delay_ms", 0),
        )
        for name, value in (("count", count), ("delay_ms", delay_ms), ("retry_after", retry_after)):
            if value is not None and (type(value) is not int or value < 0):
                raise ControlError(400, f"{name}: expected a non-negative integer")
        sandbox.faults.add(Fault(route, status, count, retry_after, delay_ms))
        return {"applied": "fault", "route": route, "count": count}

    async def clear_faults(request: Request) -> JSON:
        sandbox.faults.clear()
        return {"faults": []}

    async def revoke_tokens(request: Request) -> JSON:
        data = await control.body(request)
        account_id = control.text(data, "account_id")
        assert account_id is not None
        try:
            sandbox.revoke_account_tokens(account_id)
        except KeyError:
            raise ControlError(404, "account_id: no such account") from None
        return {"revoked": account_id}

    async def webhook_log(request: Request) -> JSON:
        return {"entries": list(sandbox.webhooks.log)}

    one = "/_sandbox/accounts/{account_id}"
    table: list[tuple[str, control.Handler, str]] = [
        ("/_sandbox/apps", create_app_, "POST"),
        ("/_sandbox/apps", list_apps, "GET"),
        ("/_sandbox/accounts", create_account, "POST"),
        ("/_sandbox/accounts", list_accounts, "GET"),
        ("/_sandbox/authorize", authorize, "POST"),
        (f"{one}/files", put_file, "PUT"),
        (f"{one}/files", get_file, "GET"),
        (f"{one}/files", delete_file, "DELETE"),
        (f"{one}/folders", create_folder, "POST"),
        (f"{one}/move", move, "POST"),
        (f"{one}/settings", settings, "POST"),
        ("/_sandbox/faults", add_fault, "POST"),
        ("/_sandbox/faults", clear_faults, "DELETE"),
        ("/_sandbox/tokens/revoke", revoke_tokens, "POST"),
        ("/_sandbox/webhooks/log", webhook_log, "GET"),
    ]
    return control.routes(table, json_response, _failure)
