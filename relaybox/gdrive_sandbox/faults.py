"""Injected failures: the next ``count`` calls of a method fail a given way.

Methods are named as Google's discovery documents name them (``drive.changes.list``,
``drive.files.get``...; ``drive.`` may be left out), plus ``oauth2.token`` and
``oauth2.revoke``; ``*`` is every method.
"""

from dataclasses import dataclass

ANY = "*"
OAUTH_METHODS = frozenset({"oauth2.token", "oauth2.revoke"})


def method_key(name: str) -> str:
    name = name.strip()
    if name == ANY or name in OAUTH_METHODS or name.startswith("drive."):
        return name
    return "drive." + name


@dataclass
class Fault:
    method: str
    status: int
    """An HTTP status; a 2xx delays only (with ``delay_ms``)."""
    count: int = 1
    reason: str | None = None
    """The ``errors[].reason`` (403: ``userRateLimitExceeded`` unless given), or for the OAuth
    endpoints the ``error`` (``invalid_grant``...)."""
    retry_after: int | None = None
    delay_ms: int = 0


class Faults:
    def __init__(self) -> None:
        self.pending: list[Fault] = []

    def add(self, fault: Fault) -> None:
        fault.method = method_key(fault.method)
        if fault.count > 0:
            self.pending.append(fault)

    def take(self, method: str) -> Fault | None:
        """Use up one call of the first fault for ``method``."""
        for fault in self.pending:
            if fault.method in (method, ANY):
                fault.count -= 1
                if fault.count <= 0:
                    self.pending.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self.pending.clear()
