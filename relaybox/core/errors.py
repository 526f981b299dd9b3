"""The exception tree of relaybox.

Every error relaybox raises on purpose derives from `RelayboxError`, so a
caller can catch "anything relaybox refused" in one clause and let real bugs
through. The tree is kept small; add a class only when some caller needs to
tell it apart from its parent.

    RelayboxError
    ├── NotFound                no such object (for this caller); the API answers 404
    ├── Conflict                clashes with the current state; the API answers 409
    └── InvalidInput            bad input; the API answers 400
        ├── InvalidCallbackURL  the callback URL is malformed or not allowed
        │   └── BlockedAddress  its host resolves to a non-public address
        └── ProviderRefused     the provider refused what the input named (an OAuth code);
                                the API adds the provider's words as `providerMessage`

`InvalidInput` is also a `ValueError`, so raising it inside a pydantic
validator turns into an ordinary validation error. Its message reads on its
own ("callback URL must use http or https, not 'ftp'"); `field` names the
input key it is about (for example ``event.notification.callback.url``) so
the API layer can put the field in front of the message.
"""

from __future__ import annotations

__all__ = [
    "CALLBACK_URL_FIELD",
    "BlockedAddress",
    "InvalidCallbackURL",
    "InvalidInput",
    "ProviderRefused",
    "RelayboxError",
]

CALLBACK_URL_FIELD = "event.notification.callback.url"


class RelayboxError(Exception):
    """Base class of every error relaybox raises deliberately."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(RelayboxError):
    """No such object for this caller; another organization's objects are not found either."""


class Conflict(RelayboxError):
    """The request clashes with the current state, for example a duplicate name."""


class InvalidInput(RelayboxError, ValueError):
    """An input value is wrong; `field` names it when known."""

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class InvalidCallbackURL(InvalidInput):
    """A callback URL is malformed, has a scheme other than http/https, or similar."""

    def __init__(self, message: str, *, field: str | None = CALLBACK_URL_FIELD) -> None:
        super().__init__(message, field=field)


class BlockedAddress(InvalidCallbackURL):
    """A callback host resolves to an address relaybox must not connect to (SSRF guard).

    `address` is for the operator's log; the message leaves it out."""

    def __init__(
        self,
        *,
        host: str,
        address: str,
        reason: str,
        field: str | None = CALLBACK_URL_FIELD,
    ) -> None:
        # The message is shown to tenants: it never names an address the host resolved to.
        where = "is" if host == address else "resolves to"
        super().__init__(
            f"callback URL host {host!r} {where} a non-public address ({reason});"
            " only public addresses are allowed",
            field=field,
        )
        self.host = host
        self.address = address
        self.reason = reason


class ProviderRefused(InvalidInput):
    """The provider refused an input passed on to it, such as an OAuth code to exchange.

    `provider_message` holds the provider's own words (`ProviderError.provider_message`)
    when it gave any; the API answers them as `providerMessage` beside `message`."""

    def __init__(
        self, message: str, *, field: str | None = None, provider_message: str | None = None
    ) -> None:
        super().__init__(message, field=field)
        self.provider_message = provider_message


# --- Provider (connector) errors -------------------------------------------------------
#
#    RelayboxError
#    └── ProviderError             the provider answered with an error
#        ├── ProviderAuthError     credentials refused for good (revoked, invalid_grant)
#        │   └── TokenExpired      the access token expired: refresh and try again
#        ├── CursorReset           the change cursor is void: relist and reconcile
#        ├── RateLimited           429: wait `retry_after` seconds
#        ├── ProviderUnavailable   5xx or no answer: back off and retry
#        └── ProviderRejected      400/409: the request is wrong, do not retry


class ProviderError(RelayboxError):
    """The provider answered with an error; `status` is its HTTP status (None: no answer).

    `provider_message` is what the provider itself said about it (for Dropbox the OAuth
    `error` and `error_description`, or an API call's `error_summary`), None when it said
    nothing (no answer at all)."""

    def __init__(
        self, message: str, *, status: int | None = None, provider_message: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.provider_message = provider_message


class ProviderAuthError(ProviderError):
    """The provider refused the instance's credentials; the instance becomes invalid."""


class TokenExpired(ProviderAuthError):
    """The access token expired; a refresh may cure it."""


class CursorReset(ProviderError):
    """The change cursor is no longer valid."""


class RateLimited(ProviderError):
    """Too many requests; wait `retry_after` seconds before the next call."""

    def __init__(
        self,
        message: str,
        *,
        retry_after: float,
        status: int | None = 429,
        provider_message: str | None = None,
    ) -> None:
        super().__init__(message, status=status, provider_message=provider_message)
        self.retry_after = retry_after


class ProviderUnavailable(ProviderError):
    """A server error or no answer at all; worth retrying later."""


class ProviderRejected(ProviderError):
    """The provider says the request itself is wrong; retrying will not help."""
