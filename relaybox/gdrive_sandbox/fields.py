"""Partial responses: the ``fields`` parameter of every Google API call.

``fields`` is a comma-separated list of field names; ``a/b`` selects ``b`` inside ``a``;
``a(b,c)`` selects ``b`` and ``c`` inside ``a`` (inside each element of a list); ``*``
selects every field at its level. A name the resource does not have is refused with 400
``invalidParameter`` (``Invalid field selection name``), as Google does.
"""

import re
from typing import Any

from relaybox.gdrive_sandbox.errors import field_selection

Selection = dict[str, "Selection | None"]
"""Field name -> what is selected inside it (None: all of it)."""

Schema = dict[str, "Schema | None"]
"""Field name -> the schema of its value (None: any value, not checked further)."""

_FILE_FIELDS = (
    "appProperties capabilities clientEncryptionDetails contentHints contentRestrictions "
    "copyRequiresWriterPermission createdTime description downloadRestrictions driveId "
    "explicitlyTrashed exportLinks fileExtension folderColorRgb fullFileExtension "
    "hasAugmentedPermissions hasThumbnail headRevisionId iconLink id imageMediaMetadata "
    "inheritedPermissionsDisabled isAppAuthorized kind labelInfo lastModifyingUser "
    "linkShareMetadata md5Checksum mimeType modifiedByMe modifiedByMeTime modifiedTime name "
    "originalFilename ownedByMe owners parents permissionIds permissions properties "
    "quotaBytesUsed resourceKey sha1Checksum sha256Checksum shared sharedWithMeTime "
    "sharingUser shortcutDetails size spaces starred teamDriveId thumbnailLink "
    "thumbnailVersion trashed trashedTime trashingUser version videoMediaMetadata viewedByMe "
    "viewedByMeTime viewersCanCopyContent webContentLink webViewLink writersCanShare"
)
USER: Schema = dict.fromkeys(
    ["kind", "displayName", "photoLink", "me", "permissionId", "emailAddress"]
)
FILE: Schema = dict.fromkeys(_FILE_FIELDS.split())
CHANGE: Schema = {
    **dict.fromkeys(
        [
            "kind",
            "changeType",
            "type",
            "time",
            "removed",
            "fileId",
            "driveId",
            "drive",
            "teamDriveId",
        ]
    ),
    "teamDrive": None,
    "file": FILE,
}
CHANGE_LIST: Schema = {
    **dict.fromkeys(["kind", "nextPageToken", "newStartPageToken"]),
    "changes": CHANGE,
}
FILE_LIST: Schema = {
    **dict.fromkeys(["kind", "nextPageToken", "incompleteSearch"]),
    "files": FILE,
}
ABOUT: Schema = {
    **dict.fromkeys(
        [
            "kind",
            "appInstalled",
            "canCreateDrives",
            "canCreateTeamDrives",
            "driveThemes",
            "exportFormats",
            "folderColorPalette",
            "importFormats",
            "maxImportSizes",
            "maxUploadSize",
            "storageQuota",
            "teamDriveThemes",
        ]
    ),
    "user": USER,
}
START_PAGE_TOKEN: Schema = dict.fromkeys(["kind", "startPageToken"])
CHANNEL: Schema = dict.fromkeys(
    [
        "kind",
        "id",
        "resourceId",
        "resourceUri",
        "token",
        "expiration",
        "type",
        "address",
        "payload",
        "params",
    ]
)

_TOKEN = re.compile(r"\s*([A-Za-z0-9_$.]+|\*|[,()/])")


def _tokens(text: str) -> list[str]:
    out, at = [], 0
    text = text.strip()
    while at < len(text):
        match = _TOKEN.match(text, at)
        if match is None:
            raise field_selection(text)
        out.append(match.group(1))
        at = match.end()
    return out


def parse(text: str) -> Selection:
    """The selection ``text`` names (400 ``invalidParameter`` when malformed)."""
    tokens = _tokens(text)
    selection, rest = _list(tokens, 0, text)
    if rest != len(tokens) or not selection:
        raise field_selection(text)
    return selection


def _merge(into: Selection, name: str, inner: Selection | None) -> None:
    if name not in into:
        into[name] = inner
        return
    current = into[name]
    if current is None or inner is None:
        into[name] = None
        return
    for key, value in inner.items():
        _merge(current, key, value)


def _list(tokens: list[str], at: int, text: str) -> tuple[Selection, int]:
    selection: Selection = {}
    while True:
        if at >= len(tokens) or tokens[at] in ",()/":
            raise field_selection(text)
        path = [tokens[at]]
        at += 1
        while at < len(tokens) and tokens[at] == "/":
            if at + 1 >= len(tokens) or tokens[at + 1] in ",()/":
                raise field_selection(text)
            path.append(tokens[at + 1])
            at += 2
        inner: Selection | None = None
        if at < len(tokens) and tokens[at] == "(":
            inner, at = _list(tokens, at + 1, text)
            if at >= len(tokens) or tokens[at] != ")":
                raise field_selection(text)
            at += 1
        for name in reversed(path[1:]):
            inner = {name: inner}
        _merge(selection, path[0], inner)
        if at < len(tokens) and tokens[at] == ",":
            at += 1
            continue
        return selection, at


def check(selection: Selection, schema: Schema, prefix: str = "") -> None:
    """400 for a name ``schema`` does not have."""
    for name, inner in selection.items():
        if name == "*":
            continue
        if name not in schema:
            raise field_selection(prefix + name)
        below = schema[name]
        if inner is not None and below is not None:
            check(inner, below, f"{prefix}{name}/")


def select(value: Any, selection: Selection | None) -> Any:
    """``value`` with only the selected fields (lists: each element)."""
    if selection is None:
        return value
    if isinstance(value, list):
        return [select(item, selection) for item in value]
    if not isinstance(value, dict):
        return value
    if "*" in selection:
        return {k: select(v, selection.get(k)) for k, v in value.items()}
    return {k: select(value[k], inner) for k, inner in selection.items() if k in value}


def apply(value: Any, text: str | None, schema: Schema) -> Any:
    """``value`` as the ``fields`` parameter ``text`` asks for (all of it when absent)."""
    if text is None or not text.strip():
        return value
    selection = parse(text)
    check(selection, schema)
    return select(value, selection)
