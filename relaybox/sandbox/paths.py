"""Dropbox paths: validation, parents and scopes.

A path is ``""`` (the root) or ``/`` followed by names separated by ``/``.
Dropbox compares paths case-insensitively through ``path_lower``.
"""


class MalformedPath(ValueError):
    """The path is not a valid Dropbox path."""


def clean(path: str, *, allow_root: bool = True) -> str:
    """The display form of ``path`` (no trailing slash), or MalformedPath."""
    if path in ("", "/"):
        if allow_root:
            return ""
        raise MalformedPath(path)
    if not path.startswith("/"):
        raise MalformedPath(path)
    trimmed = path.rstrip("/")
    names = trimmed[1:].split("/")
    if any(name in ("", ".", "..") or "\\" in name for name in names):
        raise MalformedPath(path)
    return trimmed


def parent(path: str) -> str:
    """The parent of a non-root path (``""`` for a top-level entry)."""
    return path.rsplit("/", 1)[0]


def name(path: str) -> str:
    return path.rsplit("/", 1)[1]


def is_within(path_lower: str, base_lower: str) -> bool:
    """Whether ``path_lower`` is ``base_lower`` or below it."""
    return base_lower == "" or path_lower == base_lower or path_lower.startswith(base_lower + "/")


def in_scope(path_lower: str, base_lower: str, recursive: bool) -> bool:
    """Whether a listing of ``base_lower`` shows ``path_lower``.

    A recursive listing of a folder shows the folder itself and everything
    under it; a flat one shows only the folder's direct children.
    """
    if recursive:
        return is_within(path_lower, base_lower)
    return path_lower != base_lower and parent(path_lower) == base_lower


def ancestors(path: str) -> list[str]:
    """Every proper ancestor of ``path`` except the root, outermost first."""
    names = path[1:].split("/")[:-1]
    return ["/" + "/".join(names[: i + 1]) for i in range(len(names))]
