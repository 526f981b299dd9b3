"""The records the sandbox keeps: apps, accounts, files and changes."""

from dataclasses import dataclass, field

from relaybox.sandbox import paths
from relaybox.sandbox.types import JSON


@dataclass
class App:
    """A registered Dropbox app (what the App Console holds)."""

    key: str
    secret: str
    webhook_uri: str | None = None
    webhook_verified: bool = False


@dataclass
class Account:
    """A Dropbox user."""

    account_id: str
    uid: int
    email: str
    display_name: str
    report_descendant_deletes: bool = False
    collapse_changes: bool = False
    """``list_folder/continue`` lists each changed path once, in its latest state."""
    authorized_apps: set[str] = field(default_factory=set)

    def full_account(self) -> JSON:
        """The ``users/get_current_account`` answer (a ``FullAccount``)."""
        given, _, surname = self.display_name.partition(" ")
        initials = "".join(part[:1].upper() for part in self.display_name.split()[:2])
        namespace = str(self.uid * 7 + 1000)
        return {
            "account_id": self.account_id,
            "name": {
                "given_name": given,
                "surname": surname,
                "familiar_name": given,
                "display_name": self.display_name,
                "abbreviated_name": initials or "?",
            },
            "email": self.email,
            "email_verified": True,
            "disabled": False,
            "country": "US",
            "locale": "en",
            "referral_link": f"https://db.tt/sandbox{self.uid}",
            "is_paired": False,
            "account_type": {".tag": "basic"},
            "root_info": {
                ".tag": "user",
                "root_namespace_id": namespace,
                "home_namespace_id": namespace,
            },
        }


@dataclass
class Node:
    """A file or folder in an account."""

    id: str
    path_display: str
    is_folder: bool
    rev: str = ""
    content: bytes = b""
    content_hash: str = ""
    client_modified: str = ""
    server_modified: str = ""

    @property
    def path_lower(self) -> str:
        return self.path_display.lower()

    @property
    def name(self) -> str:
        return paths.name(self.path_display)

    def metadata(self) -> JSON:
        """The ``FileMetadata`` or ``FolderMetadata`` of this node."""
        if self.is_folder:
            return {
                ".tag": "folder",
                "name": self.name,
                "path_lower": self.path_lower,
                "path_display": self.path_display,
                "id": self.id,
            }
        return {
            ".tag": "file",
            "name": self.name,
            "path_lower": self.path_lower,
            "path_display": self.path_display,
            "id": self.id,
            "client_modified": self.client_modified,
            "server_modified": self.server_modified,
            "rev": self.rev,
            "size": len(self.content),
            "is_downloadable": True,
            "content_hash": self.content_hash,
        }

    def deleted_metadata(self) -> JSON:
        """The ``DeletedMetadata`` for this node's path (no ``id``, as Dropbox)."""
        return {
            ".tag": "deleted",
            "name": self.name,
            "path_lower": self.path_lower,
            "path_display": self.path_display,
        }


@dataclass
class Change:
    """One entry of an account's change log: the state a path took."""

    path_lower: str
    entry: JSON
    descendant: bool = False
    """A deletion implied by deleting or moving an ancestor folder."""

    @property
    def deleted(self) -> bool:
        return bool(self.entry[".tag"] == "deleted")
