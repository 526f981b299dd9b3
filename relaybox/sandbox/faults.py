"""Injected failures: the next ``count`` calls of a route fail a given way."""

import re
from dataclasses import dataclass

ANY_ROUTE = "*"


def route_key(route: str) -> str:
    """Dropbox's route name without the version: ``files/delete_v2`` -> ``files/delete``."""
    return re.sub(r"_v\d+$", "", route.strip("/"))


@dataclass
class Fault:
    route: str
    status: int | str
    """An HTTP status, or ``"backoff"`` (longpoll answers with a ``backoff``)."""
    count: int = 1
    retry_after: int | None = None
    delay_ms: int = 0


class FaultRegistry:
    def __init__(self) -> None:
        self.faults: list[Fault] = []

    def add(self, fault: Fault) -> None:
        fault.route = ANY_ROUTE if fault.route == ANY_ROUTE else route_key(fault.route)
        if fault.count > 0:
            self.faults.append(fault)

    def take(self, route: str) -> Fault | None:
        """Consume one use of the first fault that matches ``route``."""
        key = route_key(route)
        for fault in self.faults:
            if fault.route in (key, ANY_ROUTE):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    def clear(self) -> None:
        self.faults.clear()
