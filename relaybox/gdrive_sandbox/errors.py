"""Google's error answers, and the JSON response every route uses.

APIs answer ``{"error": {"code", "message", "errors": [{"message", "domain", "reason",
"location", "locationType"}], "status"}}`` (``status`` where Google's front end adds it:
authentication, scopes, quota); the OAuth endpoints answer
``{"error": "invalid_grant", "error_description": "..."}``.
"""

import json
from typing import Any

from starlette.responses import Response

from relaybox.sandbox_kit.types import JSON as JSON

MEDIA_TYPE = "application/json; charset=UTF-8"
NO_STORE = {"Cache-Control": "no-cache, no-store, max-age=0, must-revalidate", "Pragma": "no-cache"}


def json_response(
    data: Any, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response:
    body = json.dumps(data, indent=2).encode()
    return Response(body, status_code, headers=headers, media_type=MEDIA_TYPE)


class GoogleError(Exception):
    """An API error answer; :meth:`response` renders it."""

    def __init__(
        self,
        code: int,
        message: str,
        reason: str,
        *,
        domain: str = "global",
        location: str | None = None,
        location_type: str | None = None,
        status: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code, self.message, self.reason, self.domain = code, message, reason, domain
        self.location, self.location_type, self.status = location, location_type, status
        self.headers = dict(headers or {})

    def body(self) -> JSON:
        item: JSON = {"message": self.message, "domain": self.domain, "reason": self.reason}
        if self.location is not None:
            item["location"] = self.location
            item["locationType"] = self.location_type or "parameter"
        error: JSON = {"code": self.code, "message": self.message, "errors": [item]}
        if self.status is not None:
            error["status"] = self.status
        return {"error": error}

    def response(self) -> Response:
        return json_response(self.body(), self.code, self.headers)


def invalid(location: str, message: str = "Invalid Value") -> GoogleError:
    """400 ``invalid`` for a parameter (a page token Drive did not issue, say)."""
    return GoogleError(400, message, "invalid", location=location, location_type="parameter")


def required(location: str, location_type: str = "parameter") -> GoogleError:
    return GoogleError(
        400,
        f"Required parameter: {location}",
        "required",
        location=location,
        location_type=location_type,
    )


def bad_request(message: str) -> GoogleError:
    return GoogleError(400, message, "badRequest")


def field_selection(selection: str) -> GoogleError:
    return GoogleError(
        400,
        f"Invalid field selection {selection}",
        "invalidParameter",
        location="fields",
        location_type="parameter",
    )


def file_not_found(file_id: str) -> GoogleError:
    return GoogleError(
        404,
        f"File not found: {file_id}.",
        "notFound",
        location="fileId",
        location_type="parameter",
    )


def forbidden(message: str, reason: str) -> GoogleError:
    return GoogleError(403, message, reason)


CHALLENGE = 'Bearer realm="https://accounts.google.com/", error="invalid_token"'


def invalid_credentials() -> GoogleError:
    """401 for an unknown, expired or revoked access token (Google tells them apart in no way)."""
    return GoogleError(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, "
        "login cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "authError",
        location="Authorization",
        location_type="header",
        status="UNAUTHENTICATED",
        headers={"WWW-Authenticate": CHALLENGE},
    )


def missing_credentials() -> GoogleError:
    return GoogleError(
        401,
        "Request is missing required authentication credential. Expected OAuth 2 access "
        "token, login cookie or other valid authentication credential. See "
        "https://developers.google.com/identity/sign-in/web/devconsole-project.",
        "required",
        location="Authorization",
        location_type="header",
        status="UNAUTHENTICATED",
        headers={"WWW-Authenticate": 'Bearer realm="https://accounts.google.com/"'},
    )


def insufficient_scopes() -> GoogleError:
    return GoogleError(
        403,
        "Request had insufficient authentication scopes.",
        "insufficientPermissions",
        status="PERMISSION_DENIED",
        headers={
            "WWW-Authenticate": 'Bearer realm="https://accounts.google.com/", '
            'error="insufficient_scope"'
        },
    )


RATE_LIMITS = {
    "userRateLimitExceeded": "User rate limit exceeded.",
    "rateLimitExceeded": "Rate limit exceeded.",
    "dailyLimitExceeded": "Daily limit exceeded.",
}
SERVER_ERRORS = {
    500: ("Internal Error", "backendError", "INTERNAL"),
    502: ("Bad Gateway", "backendError", None),
    503: ("The service is currently unavailable.", "backendError", "UNAVAILABLE"),
    504: ("Deadline exceeded.", "backendError", "DEADLINE_EXCEEDED"),
}


def status_error(code: int, reason: str | None, retry_after: int | None) -> GoogleError | None:
    """The error an injected fault answers with (None for a 2xx: a delay only)."""
    if code < 400:
        return None
    headers = {} if retry_after is None else {"Retry-After": str(retry_after)}
    if code == 401:
        error = invalid_credentials()
        error.headers.update(headers)
        return error
    if code == 429:
        return GoogleError(
            429,
            "Rate Limit Exceeded",
            reason or "rateLimitExceeded",
            domain="usageLimits",
            status="RESOURCE_EXHAUSTED",
            headers=headers,
        )
    if code == 403:
        name = reason or "userRateLimitExceeded"
        if name == "insufficientPermissions":
            return insufficient_scopes()
        message = RATE_LIMITS.get(name, "The user does not have sufficient permissions.")
        domain = "usageLimits" if name in RATE_LIMITS else "global"
        return GoogleError(403, message, name, domain=domain, headers=headers)
    if code == 404:
        return GoogleError(404, "Requested entity was not found.", reason or "notFound")
    if code >= 500:
        message, default, status = SERVER_ERRORS.get(code, ("Backend Error", "backendError", None))
        return GoogleError(code, message, reason or default, status=status, headers=headers)
    return GoogleError(code, "Bad Request", reason or "badRequest", headers=headers)


class OAuthError(Exception):
    """An answer of the token or revoke endpoint: ``{"error", "error_description"}``."""

    def __init__(
        self,
        error: str,
        description: str,
        status: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status
        self.headers = {**NO_STORE, **(headers or {})}

    def response(self) -> Response:
        body = {"error": self.error, "error_description": self.description}
        return json_response(body, self.status, self.headers)
