"""Paging as the anchor platform does it: `pageSize`, and an opaque next-page token."""

from __future__ import annotations

import base64
import binascii

from fastapi import Query

from relaybox.api.errors import ApiError

PAGE_HEADER = "Elements-Next-Page-Token"
PageSize = Query(default=50, alias="pageSize", ge=1, le=500)
NextPage = Query(default=None, alias="nextPage", max_length=200)


def encode_page(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode()


def decode_page(token: str | None) -> int | None:
    """The id to continue below, or None for the first page."""
    if not token:
        return None
    try:
        text = base64.urlsafe_b64decode(token.encode()).decode()
        if not text.startswith("id:"):
            raise ValueError(text)
        value = int(text[3:])
        if not 0 < value <= 2**63 - 1:
            raise ValueError(text)
        return value
    except (ValueError, binascii.Error, UnicodeDecodeError):
        raise ApiError(400, "nextPage: not a page token from this server") from None
