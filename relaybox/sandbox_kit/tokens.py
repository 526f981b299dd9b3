"""The tables of OAuth codes, access tokens and refresh tokens a sandbox keeps.

How a code becomes tokens, which grants give a refresh token, lifetimes, what revoking a
token takes with it and the errors are each provider's own (their ``tokens.py``). What is
the same for both lives here: the three tables, their place in the state file, revoking
everything of one account and expiring every access token now (the control API's
``tokens/revoke`` and ``expire_tokens``).
"""

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from relaybox.sandbox_kit.types import JSON


class Record(Protocol):
    """A dataclass instance."""

    __dataclass_fields__: ClassVar[dict[str, Any]]


class Code(Record, Protocol):
    code: str
    used: bool


class Access(Record, Protocol):
    token: str
    expires_at: float
    revoked: bool


class Refresh(Record, Protocol):
    token: str
    revoked: bool


C = TypeVar("C", bound=Code)
A = TypeVar("A", bound=Access)
R = TypeVar("R", bound=Refresh)


class TokenTables(Generic[C, A, R]):
    """Codes, access tokens and refresh tokens by their strings.

    ``owner`` names the field of each that holds the account (``account_id``,
    ``permission_id``); ``code``, ``access`` and ``refresh`` make each from its saved
    fields.
    """

    def __init__(
        self,
        now: Callable[[], float],
        owner: str,
        code: Callable[..., C],
        access: Callable[..., A],
        refresh: Callable[..., R],
    ) -> None:
        self.now = now
        self.codes: dict[str, C] = {}
        self.access: dict[str, A] = {}
        self.refresh: dict[str, R] = {}
        self._owner = owner
        self._make = (code, access, refresh)

    def dump(self) -> JSON:
        """The tables as the state file keeps them."""
        return {
            "codes": [dataclasses.asdict(c) for c in self.codes.values()],
            "access_tokens": [dataclasses.asdict(t) for t in self.access.values()],
            "refresh_tokens": [dataclasses.asdict(t) for t in self.refresh.values()],
        }

    def load(self, data: JSON) -> None:
        """Add the tables :meth:`dump` wrote."""
        code, access, refresh = self._make
        for fields in data["codes"]:
            found_code = code(**fields)
            self.codes[found_code.code] = found_code
        for fields in data["access_tokens"]:
            found_access = access(**fields)
            self.access[found_access.token] = found_access
        for fields in data["refresh_tokens"]:
            found_refresh = refresh(**fields)
            self.refresh[found_refresh.token] = found_refresh

    def revoke_account(self, owner: str) -> None:
        """Revoke every token of the account and use up its codes."""
        tokens: list[Access | Refresh] = [*self.access.values(), *self.refresh.values()]
        for item in tokens:
            if getattr(item, self._owner) == owner:
                item.revoked = True
        for code in self.codes.values():
            if getattr(code, self._owner) == owner:
                code.used = True

    def expire_all(self) -> None:
        """Every access token expires now."""
        now = self.now()
        for token in self.access.values():
            token.expires_at = min(token.expires_at, now)
