"""A create or update request for an instance, checked for shape (not yet against Dropbox).

Pure: every error is an `InvalidInput` naming its field.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from relaybox.core.errors import InvalidInput, NotFound

ELEMENT_INFO = {"dropbox": (14, "Dropbox"), "googledrive": (21, "Google Drive")}
"""Each element's key, the anchor's id for it and its name (the devportal docs show
Dropbox as element 14 and Google Drive as element 21)."""
ELEMENTS = frozenset(ELEMENT_INFO)
MAX_NAME = 200
MAX_TAGS = 50
MAX_TAG = 100


@dataclass(frozen=True)
class InstanceRequest:
    """A create or update request, checked for shape (not yet against Dropbox)."""

    name: str | None
    tags: list[str] | None
    code: str | None
    element_key: str | None
    configuration: Mapping[str, Any] | None


def element_key(key_or_id: str) -> str:
    """`/elements/{keyOrId}/...`: the element named by its key or by the anchor's id."""
    for key, (number, _) in ELEMENT_INFO.items():
        if key_or_id in (key, str(number)):
            return key
    raise NotFound(f"no element {key_or_id!r}")


def parse_request(body: Any, *, creating: bool) -> InstanceRequest:
    if not isinstance(body, Mapping):
        raise InvalidInput("the request body must be a JSON object", field="body")
    element_key = None
    if "element" in body or creating:
        element = body.get("element")
        key = element.get("key") if isinstance(element, Mapping) else None
        if not isinstance(key, str) or key not in ELEMENTS:
            raise InvalidInput(
                f"element.key must be one of: {', '.join(sorted(ELEMENTS))}", field="element.key"
            )
        element_key = key
    name = body.get("name")
    if name is not None or creating:
        if not isinstance(name, str) or not name.strip():
            raise InvalidInput("name is required and must be a non-empty string", field="name")
        if len(name) > MAX_NAME:
            raise InvalidInput(f"name is longer than {MAX_NAME} characters", field="name")
        name = name.strip()
    tags = body.get("tags")
    if tags is not None:
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise InvalidInput("tags must be a list of strings", field="tags")
        if len(tags) > MAX_TAGS or any(len(t) > MAX_TAG for t in tags):
            raise InvalidInput(
                f"tags: at most {MAX_TAGS} tags of at most {MAX_TAG} characters", field="tags"
            )
    code = None
    provider = body.get("providerData")
    if provider is not None:
        if not isinstance(provider, Mapping):
            raise InvalidInput("providerData must be an object", field="providerData")
        code = provider.get("code")
        if code is not None and (not isinstance(code, str) or not code or len(code) > 4096):
            raise InvalidInput(
                "providerData.code must be a non-empty string", field="providerData.code"
            )
    configuration = body.get("configuration")
    if configuration is not None and not isinstance(configuration, Mapping):
        raise InvalidInput("configuration must be an object", field="configuration")
    return InstanceRequest(name, tags, code, element_key, configuration)
