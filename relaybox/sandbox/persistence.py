"""The sandbox's state as JSON, and the sandbox again from it.

The file holds apps, accounts, files (content base64), change logs, codes
and tokens, so a demo account survives restarts. Written atomically after
every change (``relaybox/sandbox_kit/statefile.py``).
"""

import dataclasses
from typing import TYPE_CHECKING, Any

from relaybox.sandbox.model import Account, App, Change, Node
from relaybox.sandbox.tree import FileTree
from relaybox.sandbox.types import JSON
from relaybox.sandbox_kit.statefile import content_decoded, with_content

if TYPE_CHECKING:
    from relaybox.sandbox.state import Sandbox

VERSION = 1


def _tree(tree: FileTree) -> JSON:
    return {
        "rev_serial": tree.rev_serial,
        "nodes": [with_content(n) for n in tree.nodes.values()],
        "log": [dataclasses.asdict(c) for c in tree.log],
    }


def dump(sandbox: "Sandbox") -> JSON:
    accounts = []
    for account in sandbox.accounts.values():
        fields = dataclasses.asdict(account)
        fields["authorized_apps"] = sorted(account.authorized_apps)
        fields["tree"] = _tree(sandbox.trees[account.account_id])
        accounts.append(fields)
    return {
        "version": VERSION,
        "cursor_epoch": sandbox.cursor_epoch,
        "apps": [dataclasses.asdict(a) for a in sandbox.apps.values()],
        "accounts": accounts,
        **sandbox.tokens.dump(),
    }


def _load_tree(data: JSON) -> FileTree:
    tree = FileTree()
    tree.rev_serial = data["rev_serial"]
    for fields in data["nodes"]:
        node = Node(**content_decoded(fields))
        tree.nodes[node.path_lower] = node
        tree.by_id[node.id] = node.path_lower
    tree.log = [Change(**c) for c in data["log"]]
    return tree


def load(sandbox: "Sandbox", data: dict[str, Any]) -> None:
    sandbox.cursor_epoch = data.get("cursor_epoch", 0)
    for fields in data["apps"]:
        app = App(**fields)
        sandbox.apps[app.key] = app
    for fields in data["accounts"]:
        tree = _load_tree(fields.pop("tree"))
        account = Account(**{**fields, "authorized_apps": set(fields["authorized_apps"])})
        sandbox.accounts[account.account_id] = account
        sandbox.trees[account.account_id] = tree
    sandbox.tokens.load(data)
