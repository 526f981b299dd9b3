"""List-folder cursors: an opaque token for a position in a change log.

A cursor names the account, the listed path and options, the log position
it stands at, and, while an initial listing is being paged, the offset into
that listing. ``epoch`` voids every cursor issued before a ``reset`` fault.
"""

import base64
import binascii
import json
from dataclasses import asdict, dataclass, replace


class BadCursor(ValueError):
    """The string is not a cursor this sandbox issued."""


@dataclass(frozen=True)
class Cursor:
    account_id: str
    path_lower: str
    recursive: bool
    include_deleted: bool
    limit: int
    position: int
    epoch: int
    offset: int | None = None
    """Set while the initial listing is still being paged."""

    def at(self, position: int, offset: int | None = None) -> "Cursor":
        return replace(self, position=position, offset=offset)

    def encode(self) -> str:
        raw = json.dumps(asdict(self), separators=(",", ":")).encode()
        return "AAE" + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode(text: str) -> Cursor:
    if not text.startswith("AAE"):
        raise BadCursor(text)
    body = text[3:]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        fields = json.loads(raw)
        return Cursor(**fields)
    except (binascii.Error, ValueError, TypeError):
        raise BadCursor(text) from None
