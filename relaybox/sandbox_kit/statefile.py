"""A sandbox's JSON state file: coalesced saves, atomic writes.

A sandbox calls :meth:`StateFile.save` after every change. Inside a running event loop
saves are coalesced over ``SAVE_DELAY`` so a burst of changes writes the file once;
outside one the file is written at once; :meth:`StateFile.flush` (at close) writes what
is pending. A write goes to a temporary file first, then replaces the file, so a crash
never leaves half a file.
"""

import asyncio
import base64
import dataclasses
import json
import os
import pathlib
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from relaybox.sandbox_kit.types import JSON

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

SAVE_DELAY = 0.2
"""Seconds over which saves of the state file are coalesced."""


def write_atomically(path: pathlib.Path, data: JSON) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data))
    os.replace(temporary, path)


def with_content(item: "DataclassInstance") -> JSON:
    """A dataclass's fields for the file, its ``content`` bytes as base64 text."""
    fields = dataclasses.asdict(item)
    fields["content"] = base64.b64encode(fields["content"]).decode()
    return fields


def content_decoded(fields: JSON) -> JSON:
    """The fields :func:`with_content` wrote, ``content`` as bytes again."""
    return {**fields, "content": base64.b64decode(fields["content"])}


class StateFile:
    """Where a sandbox keeps its state (nowhere when ``path`` is None).

    ``dump`` answers the whole state as JSON; it is called when the file is written.
    """

    def __init__(self, path: pathlib.Path | None, dump: Callable[[], JSON]) -> None:
        self.path = path
        self._dump = dump
        self._pending = False

    def read(self) -> dict[str, Any] | None:
        """The saved state, or None when there is no file (yet)."""
        if self.path is None or not self.path.exists():
            return None
        data: dict[str, Any] = json.loads(self.path.read_text())
        return data

    def save(self) -> None:
        """Write the state (when a path is set), coalesced inside a running loop."""
        if self.path is None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._write()
            return
        if not self._pending:
            self._pending = True
            loop.call_later(SAVE_DELAY, self._write)

    def flush(self) -> None:
        """Write a coalesced save that is still waiting (call at close)."""
        if self._pending:
            self._write()

    def _write(self) -> None:
        self._pending = False
        if self.path is not None:
            write_atomically(self.path, self._dump())
