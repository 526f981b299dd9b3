"""Shared type aliases."""

from typing import Any

JSON = dict[str, Any]
