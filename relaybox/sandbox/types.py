"""Shared type aliases (the kit's, which both sandboxes use)."""

from relaybox.sandbox_kit.types import JSON as JSON
