"""The sandbox's state as JSON, and the sandbox again from it.

The file holds apps, accounts, their files (content base64) and change logs, page token
bases, codes, tokens, channels (with their message numbers) and the time offset, so a demo
account and its channels survive restarts. Written atomically
(``relaybox/sandbox_kit/statefile.py``).
"""

import dataclasses
from typing import TYPE_CHECKING, Any

from relaybox.gdrive_sandbox.drive import Drive
from relaybox.gdrive_sandbox.errors import JSON
from relaybox.gdrive_sandbox.model import Account, App, Channel, DriveFile, LoggedChange
from relaybox.sandbox_kit.statefile import content_decoded, with_content

if TYPE_CHECKING:
    from relaybox.gdrive_sandbox.state import DriveSandbox

VERSION = 1


def _drive(drive: Drive) -> JSON:
    return {
        "serial": drive.serial,
        "files": [with_content(f) for f in drive.files.values()],
        "order": list(drive.order),
        "log": [dataclasses.asdict(c) for c in drive.log],
    }


def dump(sandbox: "DriveSandbox") -> JSON:
    accounts = []
    for account in sandbox.accounts.values():
        key = account.permission_id
        fields = dataclasses.asdict(account)
        fields["drive"] = _drive(sandbox.drives[key])
        fields["page_token_base"] = sandbox.page_token_base[key]
        accounts.append(fields)
    return {
        "version": VERSION,
        "time_offset": sandbox.time_offset,
        "apps": [dataclasses.asdict(a) for a in sandbox.apps.values()],
        "accounts": accounts,
        **sandbox.tokens.dump(),
        "channels": [dataclasses.asdict(c) for c in sandbox.channels.values()],
    }


def _load_drive(data: JSON, root_id: str) -> Drive:
    drive = Drive(root_id, 0.0)
    drive.serial = data["serial"]
    drive.files = {}
    for fields in data["files"]:
        item = DriveFile(**content_decoded(fields))
        drive.files[item.id] = item
    drive.order = list(data["order"])
    drive.log = [LoggedChange(**c) for c in data["log"]]
    return drive


def load(sandbox: "DriveSandbox", data: dict[str, Any]) -> None:
    sandbox.time_offset = data.get("time_offset", 0.0)
    for fields in data["apps"]:
        app = App(**fields)
        sandbox.apps[app.client_id] = app
    for fields in data["accounts"]:
        drive_data, base = fields.pop("drive"), fields.pop("page_token_base")
        account = Account(**fields)
        key = account.permission_id
        sandbox.accounts[key] = account
        sandbox.drives[key] = _load_drive(drive_data, account.root_id)
        sandbox.page_token_base[key] = base
    sandbox.tokens.load(data)
    for fields in data["channels"]:
        channel = Channel(**fields)
        sandbox.channels[channel.resource_id] = channel
