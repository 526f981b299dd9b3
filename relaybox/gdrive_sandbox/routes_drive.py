"""Drive API v3 under ``/drive/v3``: about, files, changes, channels.

Each call: an injected fault (if any), then the bearer token (401 ``authError`` when
unknown, expired or revoked), its scopes (403 ``insufficientPermissions``), the handler,
and ``fields`` applied to the answer. Without ``fields`` an answer shows Drive v3's default
fields (a file: ``kind``, ``id``, ``name``, ``mimeType``); ``about.get`` requires it.
"""

import asyncio
import base64
import binascii
import hashlib
import ipaddress
import json
import re
import urllib.parse
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from relaybox.gdrive_sandbox import fields, ids, query
from relaybox.gdrive_sandbox.drive import Drive
from relaybox.gdrive_sandbox.errors import (
    JSON,
    GoogleError,
    forbidden,
    insufficient_scopes,
    invalid,
    invalid_credentials,
    json_response,
    missing_credentials,
    required,
    status_error,
)
from relaybox.gdrive_sandbox.model import FOLDER, QUOTA, LoggedChange, default_view
from relaybox.gdrive_sandbox.state import CHANNEL_TYPES, DriveSandbox, WatchRequest
from relaybox.gdrive_sandbox.tokens import READ_SCOPES, WRITE_SCOPES, AccessToken, TokenRejected

API = "/drive/v3"
DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE = 100, 1000
SPACES = frozenset({"drive", "appDataFolder", "photos"})
CHANNEL_ID = re.compile(r"[A-Za-z0-9\-_+/=]{1,64}")
MAX_CHANNEL_TOKEN = 256


@dataclass
class Call:
    """What a handler gets."""

    sandbox: DriveSandbox
    request: Request
    token: AccessToken
    body: JSON

    @property
    def params(self) -> QueryParams:
        return self.request.query_params

    @property
    def permission_id(self) -> str:
        return self.token.permission_id

    @property
    def drive(self) -> Drive:
        return self.sandbox.drives[self.token.permission_id]

    @property
    def api_base(self) -> str:
        """This API's URL as the client reached it (``.../drive/v3``)."""
        return str(self.request.base_url).rstrip("/") + API

    def flag(self, name: str, default: bool) -> bool:
        value = self.params.get(name)
        if value is None:
            return default
        if value.lower() not in ("true", "false"):
            raise invalid(
                name,
                f"Invalid value '{value}'. Values must match the following "
                "regular expression: '(?i)true|false'",
            )
        return value.lower() == "true"

    def number(self, name: str, default: int, low: int, high: int) -> int:
        """An integer parameter; above ``high`` it is brought down to it (as Drive does)."""
        value = self.params.get(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise invalid(name, f"Invalid value '{value}'. Values must be integers.") from None
        if number < low:
            raise invalid(
                name, f"Invalid value '{value}'. Values must be within the range: [{low}, {high}]"
            )
        return min(number, high)

    def spaces(self) -> frozenset[str]:
        names = frozenset(s.strip() for s in self.params.get("spaces", "drive").split(","))
        if not names or not names <= SPACES:
            raise invalid("spaces")
        return names

    def text(self, name: str) -> str | None:
        value = self.body.get(name)
        if value is not None and not isinstance(value, str):
            raise GoogleError(
                400, f"Invalid value at '{name}': expected a string", "invalid", location=name
            )
        return value


Handler = Callable[[Call], Awaitable[Any]]


async def apply_fault(sandbox: DriveSandbox, method: str) -> str | None:
    """Use up a fault for ``method``: wait its delay, raise its error; answers its reason."""
    fault = sandbox.faults.take(method)
    if fault is None:
        return None
    if fault.delay_ms:
        await asyncio.sleep(fault.delay_ms / 1000)
    error = status_error(fault.status, fault.reason, fault.retry_after)
    if error is not None:
        raise error
    return fault.reason


def authenticate(sandbox: DriveSandbox, request: Request) -> AccessToken:
    header = request.headers.get("authorization")
    if header is None:
        given = request.query_params.get("access_token") or request.query_params.get("oauth_token")
        if not given:
            raise missing_credentials()
    else:
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise invalid_credentials()
    try:
        token = sandbox.tokens.check(given.strip())
    except TokenRejected:
        raise invalid_credentials() from None
    if token.permission_id not in sandbox.accounts:
        raise invalid_credentials()
    return token


async def _body(request: Request) -> JSON:
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError:
        raise GoogleError(400, "Parse Error", "parseError") from None
    if not isinstance(data, dict):
        raise GoogleError(400, "Invalid JSON payload received. Expected an object.", "invalid")
    return data


def endpoint(
    sandbox: DriveSandbox,
    method: str,
    handler: Handler,
    schema: fields.Schema,
    default: Callable[[JSON], JSON] | None = None,
    scopes: frozenset[str] = READ_SCOPES,
) -> Callable[[Request], Awaitable[Response]]:
    """An ASGI endpoint for the Drive method ``method`` (``drive.changes.list``...)."""

    async def run(request: Request) -> Response:
        sandbox.start()
        try:
            await apply_fault(sandbox, method)
            token = authenticate(sandbox, request)
            if not set(token.scopes) & scopes:
                raise insufficient_scopes()
            alt = request.query_params.get("alt", "json")
            if alt not in ("json", "media"):
                raise invalid("alt")
            body = await _body(request) if request.method in ("POST", "PATCH") else {}
            result = await handler(Call(sandbox, request, token, body))
            if result is None:
                return Response(status_code=204)
            if isinstance(result, Response):
                return result
            selection = request.query_params.get("fields")
            if (selection is None or not selection.strip()) and default is not None:
                return json_response(default(result))
            return json_response(fields.apply(result, selection, schema))
        except GoogleError as error:
            return error.response()

    return run


# ------------------------------------------------------------------- about


async def about_get(call: Call) -> JSON:
    if not call.params.get("fields"):
        raise GoogleError(
            400,
            "The 'fields' parameter is required for this method.",
            "required",
            location="fields",
            location_type="parameter",
        )
    account = call.sandbox.account(call.permission_id)
    used = sum(len(f.content) for f in call.drive.all_files())
    trash = sum(len(f.content) for f in call.drive.all_files() if f.trashed)
    return {
        "kind": "drive#about",
        "user": account.user(),
        "storageQuota": {
            "limit": str(QUOTA),
            "usage": str(used),
            "usageInDrive": str(used),
            "usageInDriveTrash": str(trash),
        },
        "maxUploadSize": "5242880000000",
        "appInstalled": False,
        "canCreateDrives": False,
        "importFormats": {},
        "exportFormats": {},
        "maxImportSizes": {},
        "folderColorPalette": ["#ac725e", "#d06b64", "#f83a22", "#fa573c", "#ff7537"],
    }


# ------------------------------------------------------------------- files


def _list_token(offset: int, key: str) -> str:
    raw = json.dumps({"o": offset, "k": key}, separators=(",", ":")).encode()
    return "~!!~" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _list_offset(token: str, key: str) -> int:
    """The offset a ``files.list`` page token stands at (400 for one of another query)."""
    try:
        body = token.removeprefix("~!!~")
        data = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
        offset = data["o"]
        if data["k"] != key or not isinstance(offset, int) or offset < 0:
            raise ValueError(token)
        return offset
    except (binascii.Error, ValueError, KeyError, TypeError):
        raise invalid("pageToken") from None


async def files_list(call: Call) -> JSON:
    params = call.params
    spaces = call.spaces()
    corpora = params.get("corpora", "user")
    if corpora not in ("user", "allDrives", "domain", "drive"):
        raise invalid("corpora")
    size = call.number("pageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    drive = call.drive
    match = query.predicate(params.get("q"), drive)
    found = [f for f in drive.all_files() if match(f)] if "drive" in spaces else []
    found = query.ordered(found, params.get("orderBy"))
    key = hashlib.sha256(
        "\0".join(params.get(k, "") for k in ("q", "orderBy", "spaces", "corpora")).encode()
    ).hexdigest()[:16]
    token = params.get("pageToken")
    offset = _list_offset(token, key) if token else 0
    account = call.sandbox.account(call.permission_id)
    answer: JSON = {
        "kind": "drive#fileList",
        "incompleteSearch": False,
        "files": [f.resource(account) for f in found[offset : offset + size]],
    }
    if offset + size < len(found):
        answer["nextPageToken"] = _list_token(offset + size, key)
    return answer


def _file_list_default(answer: JSON) -> JSON:
    return {**answer, "files": [default_view(f) for f in answer["files"]]}


async def files_get(call: Call) -> Any:
    item = call.drive.get(call.request.path_params["fileId"])
    if call.params.get("alt") == "media":
        if item.is_folder or item.mime_type.startswith("application/vnd.google-apps."):
            raise forbidden(
                "Only files with binary content can be downloaded. Use Export with Docs "
                "Editors files.",
                "fileNotDownloadable",
            )
        return Response(item.content, media_type=item.mime_type)
    return item.resource(call.sandbox.account(call.permission_id))


def _parents(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise GoogleError(400, "Invalid value at 'parents'", "invalid", location="parents")
    return value


READ_ONLY = frozenset(
    [
        "kind",
        "id",
        "version",
        "md5Checksum",
        "sha1Checksum",
        "sha256Checksum",
        "size",
        "quotaBytesUsed",
        "headRevisionId",
        "owners",
        "ownedByMe",
        "spaces",
        "explicitlyTrashed",
    ]
)


def _check_writable(body: JSON, *, creating: bool) -> None:
    given = set(body) & (READ_ONLY | (set() if creating else {"parents"}))
    if given:
        raise forbidden(
            "The resource body includes fields which are not directly writable.",
            "fieldNotWritable",
        )


async def files_create(call: Call) -> JSON:
    _check_writable(call.body, creating=True)
    name = call.text("name") or "Untitled"
    mime_type = call.text("mimeType")
    parents = _parents(call.body.get("parents"))
    item = call.sandbox.change(
        call.permission_id,
        lambda drive: drive.create(name, call.sandbox.now(), mime_type=mime_type, parents=parents),
    )
    return item.resource(call.sandbox.account(call.permission_id))


def _id_list(value: str | None) -> list[str]:
    return [part.strip() for part in (value or "").split(",") if part.strip()]


async def files_update(call: Call) -> JSON:
    _check_writable(call.body, creating=False)
    file_id = call.request.path_params["fileId"]
    trashed = call.body.get("trashed")
    if trashed is not None and not isinstance(trashed, bool):
        raise GoogleError(400, "Invalid value at 'trashed'", "invalid", location="trashed")
    name = call.text("name")
    mime_type = call.text("mimeType")
    item = call.drive.get(file_id)
    if (
        mime_type is not None
        and mime_type != item.mime_type
        and FOLDER in (mime_type, item.mime_type)
    ):
        raise forbidden("A folder's type cannot be changed.", "fieldNotWritable")
    item = call.sandbox.change(
        call.permission_id,
        lambda drive: drive.update(
            file_id,
            call.sandbox.now(),
            name=name,
            add_parents=_id_list(call.params.get("addParents")),
            remove_parents=_id_list(call.params.get("removeParents")),
            trashed=trashed,
        ),
    )
    return item.resource(call.sandbox.account(call.permission_id))


async def files_delete(call: Call) -> None:
    file_id = call.request.path_params["fileId"]
    call.sandbox.change(call.permission_id, lambda drive: drive.delete(file_id, call.sandbox.now()))


# ----------------------------------------------------------------- changes


async def changes_start(call: Call) -> JSON:
    if call.params.get("driveId"):
        raise GoogleError(
            404,
            f"Shared drive not found: {call.params['driveId']}",
            "notFound",
            location="driveId",
            location_type="parameter",
        )
    token = call.sandbox.start_page_token(call.permission_id)
    return {"kind": "drive#startPageToken", "startPageToken": token}


def _change(call: Call, change: LoggedChange) -> JSON:
    entry: JSON = {
        "kind": "drive#change",
        "changeType": "file",
        "type": "file",
        "time": ids.rfc3339(change.time),
        "removed": change.removed,
        "fileId": change.file_id,
    }
    if not change.removed:
        account = call.sandbox.account(call.permission_id)
        entry["file"] = call.drive.files[change.file_id].resource(account)
    return entry


async def changes_list(call: Call) -> JSON:
    sandbox, pid = call.sandbox, call.permission_id
    start = sandbox.position(pid, call.params.get("pageToken", ""))
    size = call.number("pageSize", DEFAULT_PAGE_SIZE, 1, MAX_PAGE_SIZE)
    include_removed = call.flag("includeRemoved", True)
    call.flag("restrictToMyDrive", False)  # every file of the sandbox is in My Drive
    spaces = call.spaces()
    page: list[LoggedChange] = []
    following: int | None = None
    if "drive" in spaces:
        page, following = call.drive.changes(start, size, include_removed)
    answer: JSON = {"kind": "drive#changeList", "changes": [_change(call, c) for c in page]}
    if following is None:
        answer["newStartPageToken"] = sandbox.start_page_token(pid)
    else:
        answer["nextPageToken"] = sandbox.page_token(pid, following)
    return answer


def _change_list_default(answer: JSON) -> JSON:
    changes = [
        {**c, "file": default_view(c["file"])} if "file" in c else c for c in answer["changes"]
    ]
    return {**answer, "changes": changes}


def _watch_request(body: JSON) -> WatchRequest:
    channel_id, kind, address = body.get("id"), body.get("type"), body.get("address")
    if not channel_id:
        raise required("id", "parameter")
    if not isinstance(channel_id, str) or not CHANNEL_ID.fullmatch(channel_id):
        raise invalid("id")
    if not kind:
        raise required("type")
    if kind not in CHANNEL_TYPES:
        raise GoogleError(
            400, f"Channel type '{kind}' is not supported.", "push.channelTypeNotSupported"
        )
    if not address:
        raise required("address")
    parts = urllib.parse.urlsplit(address) if isinstance(address, str) else None
    if parts is None or not parts.hostname or not _pushable(parts):
        raise GoogleError(
            400, f"WebHook callback must be HTTPS: {address}", "push.webhookUrlNotHttps"
        )
    token = body.get("token")
    if token is not None and (not isinstance(token, str) or len(token) > MAX_CHANNEL_TOKEN):
        raise invalid("token")
    expiration = body.get("expiration")
    if expiration is not None:
        if isinstance(expiration, bool) or not str(expiration).isdigit():
            raise invalid("expiration")
        expiration = int(str(expiration))
    return WatchRequest(channel_id, address, token, expiration)


def _pushable(parts: urllib.parse.SplitResult) -> bool:
    """Google pushes to HTTPS addresses only. The sandbox also pushes over plain HTTP to
    this machine (a leniency, so relaybox runs locally without TLS), never elsewhere."""
    if parts.scheme != "http":
        return parts.scheme == "https"
    host = parts.hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


async def changes_watch(call: Call) -> JSON:
    sandbox, pid = call.sandbox, call.permission_id
    page_token = call.params.get("pageToken", "")
    sandbox.position(pid, page_token)
    call.flag("includeRemoved", True)
    call.spaces()
    request = _watch_request(call.body)
    uri = f"{call.api_base}/changes?alt=json&pageToken={urllib.parse.quote(page_token)}"
    return sandbox.watch(call.token, request, uri).resource()


async def channels_stop(call: Call) -> None:
    channel_id, resource_id = call.body.get("id"), call.body.get("resourceId")
    if not channel_id or not isinstance(channel_id, str):
        raise required("id")
    if not resource_id or not isinstance(resource_id, str):
        raise required("resourceId")
    call.sandbox.stop_channel(call.token, channel_id, resource_id)


def routes(sandbox: DriveSandbox) -> list[Route]:
    def file_default(answer: JSON) -> JSON:
        return default_view(answer)

    table: list[tuple[str, str, str, Handler, fields.Schema, Any, frozenset[str]]] = [
        ("GET", "/about", "drive.about.get", about_get, fields.ABOUT, None, READ_SCOPES),
        (
            "GET",
            "/files",
            "drive.files.list",
            files_list,
            fields.FILE_LIST,
            _file_list_default,
            READ_SCOPES,
        ),
        (
            "POST",
            "/files",
            "drive.files.create",
            files_create,
            fields.FILE,
            file_default,
            WRITE_SCOPES,
        ),
        (
            "GET",
            "/files/{fileId}",
            "drive.files.get",
            files_get,
            fields.FILE,
            file_default,
            READ_SCOPES,
        ),
        (
            "PATCH",
            "/files/{fileId}",
            "drive.files.update",
            files_update,
            fields.FILE,
            file_default,
            WRITE_SCOPES,
        ),
        (
            "DELETE",
            "/files/{fileId}",
            "drive.files.delete",
            files_delete,
            fields.FILE,
            None,
            WRITE_SCOPES,
        ),
        (
            "GET",
            "/changes/startPageToken",
            "drive.changes.getStartPageToken",
            changes_start,
            fields.START_PAGE_TOKEN,
            None,
            READ_SCOPES,
        ),
        (
            "GET",
            "/changes",
            "drive.changes.list",
            changes_list,
            fields.CHANGE_LIST,
            _change_list_default,
            READ_SCOPES,
        ),
        (
            "POST",
            "/changes/watch",
            "drive.changes.watch",
            changes_watch,
            fields.CHANNEL,
            None,
            READ_SCOPES,
        ),
        (
            "POST",
            "/channels/stop",
            "drive.channels.stop",
            channels_stop,
            fields.CHANNEL,
            None,
            READ_SCOPES | WRITE_SCOPES,
        ),
    ]
    return [
        Route(
            API + path, endpoint(sandbox, method, handler, schema, default, scopes), methods=[verb]
        )
        for verb, path, method, handler, schema, default, scopes in table
    ]
