"""The control API under ``/_sandbox``: set up apps, accounts, files, faults and time.

Not Google's: it is how tests, demos and benchmarks drive the sandbox. Its errors are
``{"error": "..."}`` (400, 404); a file operation Drive would refuse answers Drive's error.

- ``POST /_sandbox/apps`` ``{client_id?, client_secret?, name?, redirect_uris?}`` (ids are
  generated when not given); ``GET /_sandbox/apps``
- ``POST /_sandbox/accounts`` ``{email, display_name?}``; ``GET /_sandbox/accounts``
- ``POST /_sandbox/authorize`` ``{client_id, permission_id, redirect_uri, scope?,
  access_type?, prompt?}`` -> ``{code}``: consent without the page
- ``GET|POST /_sandbox/accounts/{permission_id}/files`` (``{name, parent? | parent_path?,
  folder?, mime_type?, content?}``), ``PATCH|DELETE .../files/{file_id}``
  (``{name?, parent?, content?, trashed?}``: rename, move, rewrite, trash, restore)
- ``POST /_sandbox/faults`` ``{method, status, reason?, count?, retry_after?, delay_ms?}``,
  or ``{status: "expire_tokens"}``, or ``{status: "reset", permission_id?}`` (void every page
  token issued); ``DELETE /_sandbox/faults``
- ``POST /_sandbox/tokens/revoke`` ``{permission_id}``
- ``GET|POST /_sandbox/clock`` (``{advance_seconds}``): the sandbox's time
- ``GET /_sandbox/channels``, ``GET /_sandbox/push/log``
"""

import base64
import binascii
import mimetypes

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relaybox.gdrive_sandbox import ids
from relaybox.gdrive_sandbox.drive import Drive
from relaybox.gdrive_sandbox.errors import JSON, GoogleError, json_response
from relaybox.gdrive_sandbox.faults import Fault
from relaybox.gdrive_sandbox.model import DEFAULT_MIME, FOLDER, Account, App, Channel, DriveFile
from relaybox.gdrive_sandbox.state import DriveSandbox
from relaybox.gdrive_sandbox.tokens import DRIVE
from relaybox.sandbox_kit import control
from relaybox.sandbox_kit.control import ControlError


def _failure(error: Exception) -> Response | None:
    """A file operation Drive would refuse answers Drive's error."""
    return error.response() if isinstance(error, GoogleError) else None


def _content(data: JSON) -> bytes | None:
    """``content`` (text) or ``content_base64``."""
    text, encoded = data.get("content"), data.get("content_base64")
    if text is not None:
        if not isinstance(text, str):
            raise ControlError(400, "content: expected a string")
        return text.encode()
    if encoded is not None:
        try:
            return base64.b64decode(str(encoded), validate=True)
        except binascii.Error:
            raise ControlError(400, "content_base64: not base64") from None
    return None


def guess_type(name: str) -> str:
    """The type Drive detects from a file's name (``application/octet-stream`` unknown)."""
    return mimetypes.guess_type(name, strict=False)[0] or DEFAULT_MIME


def app_json(app: App) -> JSON:
    return {
        "client_id": app.client_id,
        "client_secret": app.client_secret,
        "name": app.name,
        "redirect_uris": list(app.redirect_uris),
    }


def account_json(account: Account) -> JSON:
    return {
        "permission_id": account.permission_id,
        "email": account.email,
        "display_name": account.display_name,
        "root_id": account.root_id,
    }


def file_json(drive: Drive, account: Account, item: DriveFile) -> JSON:
    return {**item.resource(account), "path": drive.path(item)}


def channel_json(channel: Channel, now: float) -> JSON:
    state = "stopped" if channel.stopped else "live" if channel.live(now) else "expired"
    return {
        "id": channel.id,
        "resource_id": channel.resource_id,
        "client_id": channel.client_id,
        "permission_id": channel.permission_id,
        "address": channel.address,
        "token_set": channel.token is not None,
        "expiration": str(channel.expiration_ms),
        "message_number": channel.message_number,
        "state": state,
    }


def routes(sandbox: DriveSandbox) -> list[Route]:
    def account_of(request: Request) -> Account:
        try:
            return sandbox.account(request.path_params["permission_id"])
        except KeyError:
            raise ControlError(404, "permission_id: no such account") from None

    async def create_app(request: Request) -> JSON:
        data = await control.body(request)
        uris = data.get("redirect_uris")
        if uris is not None and (
            not isinstance(uris, list) or not all(isinstance(u, str) and u for u in uris)
        ):
            raise ControlError(400, "redirect_uris: expected a list of URLs")
        app = sandbox.register_app(
            control.text(data, "client_id", False),
            control.text(data, "client_secret", False),
            name=control.text(data, "name", False),
            redirect_uris=uris,
        )
        return app_json(app)

    async def list_apps(request: Request) -> JSON:
        return {"apps": [app_json(a) for a in sandbox.apps.values()]}

    async def create_account(request: Request) -> JSON:
        data = await control.body(request)
        email = control.text(data, "email")
        assert email is not None
        return account_json(
            sandbox.create_account(email, control.text(data, "display_name", False))
        )

    async def list_accounts(request: Request) -> JSON:
        return {"accounts": [account_json(a) for a in sandbox.accounts.values()]}

    async def authorize(request: Request) -> JSON:
        data = await control.body(request)
        client_id, permission_id = (
            control.text(data, "client_id"),
            control.text(data, "permission_id"),
        )
        redirect_uri = control.text(data, "redirect_uri")
        assert client_id is not None and permission_id is not None and redirect_uri is not None
        app = sandbox.apps.get(client_id)
        if app is None:
            raise ControlError(404, "client_id: no such app")
        if permission_id not in sandbox.accounts:
            raise ControlError(404, "permission_id: no such account")
        if not app.allows(redirect_uri):
            raise ControlError(400, "redirect_uri: not registered for this app")
        access_type = control.text(data, "access_type", False) or "offline"
        prompt = control.text(data, "prompt", False) or "consent"
        code = sandbox.authorize(
            client_id,
            permission_id,
            redirect_uri,
            (control.text(data, "scope", False) or DRIVE).split(),
            offline=access_type == "offline",
            consent_shown="consent" in prompt.split(),
        )
        return {"code": code}

    async def list_files(request: Request) -> JSON:
        account = account_of(request)
        drive = sandbox.drives[account.permission_id]
        return {"files": [file_json(drive, account, f) for f in drive.all_files()]}

    async def create_file(request: Request) -> JSON:
        account, data = account_of(request), await control.body(request)
        name = control.text(data, "name")
        assert name is not None
        drive = sandbox.drives[account.permission_id]
        parent_path = control.text(data, "parent_path", False)
        parent = drive.find(parent_path).id if parent_path else control.text(data, "parent", False)
        folder = control.flag(data, "folder")
        mime_type = FOLDER if folder else control.text(data, "mime_type", False)
        content = _content(data) or b""
        item = sandbox.change(
            account.permission_id,
            lambda d: d.create(
                name,
                sandbox.now(),
                mime_type=mime_type or guess_type(name),
                parents=[parent] if parent else [],
                content=content,
            ),
        )
        return file_json(drive, account, item)

    async def update_file(request: Request) -> JSON:
        account, data = account_of(request), await control.body(request)
        drive = sandbox.drives[account.permission_id]
        item = drive.get(request.path_params["file_id"])
        parent = control.text(data, "parent", False)
        item = sandbox.change(
            account.permission_id,
            lambda d: d.update(
                item.id,
                sandbox.now(),
                name=control.text(data, "name", False),
                add_parents=[parent] if parent else [],
                remove_parents=list(item.parents) if parent else [],
                content=_content(data),
                trashed=control.flag(data, "trashed"),
            ),
        )
        return file_json(drive, account, item)

    async def delete_file(request: Request) -> JSON:
        account = account_of(request)
        file_id = request.path_params["file_id"]
        removed = sandbox.change(account.permission_id, lambda d: d.delete(file_id, sandbox.now()))
        return {"removed": [f.id for f in removed]}

    async def add_fault(request: Request) -> JSON:
        data = await control.body(request)
        status = data.get("status")
        if status == "expire_tokens":
            sandbox.expire_tokens()
            return {"applied": "expire_tokens"}
        if status == "reset":
            permission_id = control.text(data, "permission_id", False)
            if permission_id and permission_id not in sandbox.accounts:
                raise ControlError(404, "permission_id: no such account")
            sandbox.reset_page_tokens(permission_id)
            return {"applied": "reset"}
        if type(status) is not int or not 200 <= status <= 599:
            raise ControlError(400, "status: an HTTP status, or expire_tokens or reset")
        method = control.text(data, "method")
        assert method is not None
        count = control.count(data, "count", 1)
        fault = Fault(
            method,
            status,
            count or 0,
            control.text(data, "reason", False),
            control.count(data, "retry_after", None),
            control.count(data, "delay_ms", 0) or 0,
        )
        sandbox.faults.add(fault)
        return {"applied": "fault", "method": fault.method, "count": count}

    async def clear_faults(request: Request) -> JSON:
        sandbox.faults.clear()
        return {"faults": []}

    async def revoke_tokens(request: Request) -> JSON:
        data = await control.body(request)
        permission_id = control.text(data, "permission_id")
        assert permission_id is not None
        try:
            sandbox.revoke_account_tokens(permission_id)
        except KeyError:
            raise ControlError(404, "permission_id: no such account") from None
        return {"revoked": permission_id}

    def clock_json() -> JSON:
        now = sandbox.now()
        return {
            "now": ids.rfc3339(now),
            "now_ms": int(now * 1000),
            "offset_seconds": sandbox.time_offset,
        }

    async def get_clock(request: Request) -> JSON:
        return clock_json()

    async def advance_clock(request: Request) -> JSON:
        data = await control.body(request)
        seconds = data.get("advance_seconds")
        if not isinstance(seconds, int | float) or isinstance(seconds, bool) or seconds < 0:
            raise ControlError(400, "advance_seconds: expected a non-negative number")
        sandbox.advance(float(seconds))
        return clock_json()

    async def list_channels(request: Request) -> JSON:
        now = sandbox.now()
        return {"channels": [channel_json(c, now) for c in sandbox.channels.values()]}

    async def push_log(request: Request) -> JSON:
        return {"entries": list(sandbox.push.log)}

    one = "/_sandbox/accounts/{permission_id}/files"
    table: list[tuple[str, control.Handler, str]] = [
        ("/_sandbox/apps", create_app, "POST"),
        ("/_sandbox/apps", list_apps, "GET"),
        ("/_sandbox/accounts", create_account, "POST"),
        ("/_sandbox/accounts", list_accounts, "GET"),
        ("/_sandbox/authorize", authorize, "POST"),
        (one, list_files, "GET"),
        (one, create_file, "POST"),
        (one + "/{file_id}", update_file, "PATCH"),
        (one + "/{file_id}", delete_file, "DELETE"),
        ("/_sandbox/faults", add_fault, "POST"),
        ("/_sandbox/faults", clear_faults, "DELETE"),
        ("/_sandbox/tokens/revoke", revoke_tokens, "POST"),
        ("/_sandbox/clock", get_clock, "GET"),
        ("/_sandbox/clock", advance_clock, "POST"),
        ("/_sandbox/channels", list_channels, "GET"),
        ("/_sandbox/push/log", push_log, "GET"),
    ]
    return control.routes(table, json_response, _failure)
