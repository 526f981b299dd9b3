"""The records the sandbox keeps: apps (OAuth clients), accounts, files, changes, channels."""

import hashlib
from dataclasses import dataclass, field

from relaybox.gdrive_sandbox import ids
from relaybox.gdrive_sandbox.errors import JSON

FOLDER = "application/vnd.google-apps.folder"
DEFAULT_MIME = "application/octet-stream"
QUOTA = 15 * 1024**3


@dataclass
class App:
    """An OAuth client of a Google Cloud project (what the Cloud Console holds)."""

    client_id: str
    client_secret: str
    name: str = "Sandbox app"
    redirect_uris: list[str] = field(default_factory=list)
    """Registered redirect URIs, matched exactly; empty: any is accepted (a sandbox leniency)."""

    def allows(self, redirect_uri: str) -> bool:
        return not self.redirect_uris or redirect_uri in self.redirect_uris


@dataclass
class Account:
    """A Google user with a My Drive."""

    permission_id: str
    email: str
    display_name: str
    root_id: str

    def user(self) -> JSON:
        """A ``drive#user`` (``about.user``, ``owners``)."""
        return {
            "kind": "drive#user",
            "displayName": self.display_name,
            "me": True,
            "permissionId": self.permission_id,
            "emailAddress": self.email,
        }


@dataclass
class DriveFile:
    """A file or folder."""

    id: str
    name: str
    mime_type: str
    parents: list[str]
    created_time: float
    modified_time: float
    version: int
    content: bytes = b""
    trashed: bool = False
    explicitly_trashed: bool = False

    @property
    def is_folder(self) -> bool:
        return self.mime_type == FOLDER

    def resource(self, owner: Account) -> JSON:
        """Every field of this ``drive#file`` the sandbox models; ``fields`` selects from it."""
        data: JSON = {
            "kind": "drive#file",
            "id": self.id,
            "name": self.name,
            "mimeType": self.mime_type,
            "starred": False,
            "trashed": self.trashed,
            "explicitlyTrashed": self.explicitly_trashed,
            "parents": list(self.parents),
            "spaces": ["drive"],
            "version": str(self.version),
            "createdTime": ids.rfc3339(self.created_time),
            "modifiedTime": ids.rfc3339(self.modified_time),
            "modifiedByMeTime": ids.rfc3339(self.modified_time),
            "modifiedByMe": True,
            "viewedByMe": True,
            "owners": [owner.user()],
            "ownedByMe": True,
            "shared": False,
            "quotaBytesUsed": "0" if self.is_folder else str(len(self.content)),
        }
        if not self.is_folder:
            name, dot, extension = self.name.rpartition(".")
            data |= {
                "size": str(len(self.content)),
                "md5Checksum": hashlib.md5(self.content, usedforsecurity=False).hexdigest(),
                "sha1Checksum": hashlib.sha1(self.content, usedforsecurity=False).hexdigest(),
                "sha256Checksum": hashlib.sha256(self.content).hexdigest(),
                "headRevisionId": f"0B{self.version:024x}",
                "originalFilename": self.name,
            }
            if dot and name:
                data |= {"fileExtension": extension, "fullFileExtension": extension}
        return data


DEFAULT_FIELDS = ("kind", "id", "name", "mimeType")
"""What a ``drive#file`` shows without a ``fields`` parameter (Drive v3's default)."""


def default_view(resource: JSON) -> JSON:
    return {k: resource[k] for k in DEFAULT_FIELDS}


@dataclass
class LoggedChange:
    """One entry of an account's change log: a file changed, or was removed, at ``time``."""

    file_id: str
    time: float
    removed: bool = False


@dataclass
class Channel:
    """A ``changes.watch`` notification channel."""

    id: str
    resource_id: str
    client_id: str
    permission_id: str
    address: str
    expiration_ms: int
    resource_uri: str
    token: str | None = None
    message_number: int = 0
    """The last message number given out (the ``sync`` message is 1)."""
    stopped: bool = False

    def live(self, now: float) -> bool:
        return not self.stopped and now * 1000 < self.expiration_ms

    def resource(self) -> JSON:
        """The ``api#channel`` answer of ``changes.watch``."""
        data: JSON = {
            "kind": "api#channel",
            "id": self.id,
            "resourceId": self.resource_id,
            "resourceUri": self.resource_uri,
            "expiration": str(self.expiration_ms),
        }
        if self.token is not None:
            data["token"] = self.token
        return data
