"""The Dropbox client's answer handling, with the network swapped for a function (and
what both providers' OAuth clients share)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from relaybox.connectors.dropbox.client import DropboxClient, DropboxURLs
from relaybox.connectors.googledrive.client import DriveClient, GoogleURLs
from relaybox.core.clock import ManualClock
from relaybox.core.errors import (
    CursorReset,
    ProviderAuthError,
    ProviderError,
    ProviderRejected,
    ProviderUnavailable,
    RateLimited,
    TokenExpired,
)

Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, seen: list[httpx.Request]) -> DropboxClient:
    def record(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return handler(request)

    http = httpx.AsyncClient(transport=httpx.MockTransport(record))
    return DropboxClient(
        DropboxURLs("https://api", "https://content", "https://notify", "https://www"),
        http,
        retry_base=0.0,
    )


def error(status: int, body: object, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.Response(status, json=body, headers=headers)


@pytest.mark.parametrize(
    ("answer", "raised"),
    [
        (
            error(
                401,
                {
                    "error_summary": "expired_access_token/..",
                    "error": {".tag": "expired_access_token"},
                },
            ),
            TokenExpired,
        ),
        (
            error(
                401,
                {
                    "error_summary": "invalid_access_token/..",
                    "error": {".tag": "invalid_access_token"},
                },
            ),
            ProviderAuthError,
        ),
        (error(409, {"error_summary": "reset/..", "error": {".tag": "reset"}}), CursorReset),
        (
            error(409, {"error_summary": "path/not_found/..", "error": {".tag": "path"}}),
            ProviderRejected,
        ),
        (httpx.Response(400, text="Error in call to API function: bad cursor"), ProviderRejected),
    ],
)
async def test_errors_map_onto_the_error_tree(answer: httpx.Response, raised: type) -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(raised):
        await client(lambda _: answer, seen).list_folder_continue("token", "cursor")
    assert len(seen) == 1, "client errors are not retried"


async def test_rate_limit_reads_retry_after_from_json_or_header() -> None:
    seen: list[httpx.Request] = []
    body = {
        "error_summary": "too_many_requests/..",
        "error": {"reason": {".tag": "too_many_requests"}, "retry_after": 7},
    }
    with pytest.raises(RateLimited) as from_json:
        await client(lambda _: error(429, body), seen).get_current_account("t")
    assert from_json.value.retry_after == 7
    plain = httpx.Response(429, text="slow down", headers={"Retry-After": "3"})
    with pytest.raises(RateLimited) as from_header:
        await client(lambda _: plain, seen).get_current_account("t")
    assert from_header.value.retry_after == 3


async def test_server_errors_are_retried_then_raised() -> None:
    answers = [
        error(503, {}),
        error(502, {}),
        httpx.Response(500, text="oops"),
        error(200, {"entries": [], "cursor": "c2", "has_more": False}),
    ]
    seen: list[httpx.Request] = []
    result = await client(lambda _: answers[len(seen) - 1], seen).list_folder_continue("t", "c1")
    assert result["cursor"] == "c2" and len(seen) == 4
    always: list[httpx.Request] = []
    with pytest.raises(ProviderUnavailable):
        await client(lambda _: error(503, {}), always).list_folder_continue("t", "c1")
    assert len(always) == 4


async def test_lost_connections_are_retried() -> None:
    seen: list[httpx.Request] = []

    def flaky(request: httpx.Request) -> httpx.Response:
        if len(seen) < 3:
            raise httpx.ConnectError("refused", request=request)
        return error(200, {"cursor": "c"})

    assert await client(flaky, seen).get_latest_cursor("t") == "c"
    assert json.loads(seen[0].content) == {"path": "", "recursive": True, "include_deleted": False}


async def test_refresh_failure_is_an_auth_error_naming_dropbox_answer() -> None:
    seen: list[httpx.Request] = []
    answer = error(
        400, {"error": "invalid_grant", "error_description": "refresh token is invalid or revoked"}
    )
    with pytest.raises(ProviderAuthError) as raised:
        await client(lambda _: answer, seen).refresh(refresh_token="r", app_key="k", app_secret="s")
    assert "invalid_grant" in raised.value.message
    assert raised.value.provider_message == "invalid_grant: refresh token is invalid or revoked"
    form = dict(x.split("=") for x in seen[0].content.decode().split("&"))
    assert form == {
        "grant_type": "refresh_token",
        "refresh_token": "r",
        "client_id": "k",
        "client_secret": "s",
    }


async def test_longpoll_goes_to_the_notify_host_without_authorization() -> None:
    seen: list[httpx.Request] = []
    answer = await client(lambda _: error(200, {"changes": True}), seen).longpoll("cur", 30)
    assert answer == {"changes": True}
    assert str(seen[0].url) == "https://notify/2/files/list_folder/longpoll"
    assert "authorization" not in seen[0].headers
    assert json.loads(seen[0].content) == {"cursor": "cur", "timeout": 30}


@pytest.mark.parametrize(
    ("header", "expected"),
    [("inf", 3600.0), ("nan", 1.0), ("-5", 0.0), ("soon", 1.0), ("12", 12.0)],
)
async def test_retry_after_is_bounded(header: str, expected: float) -> None:
    seen: list[httpx.Request] = []
    answer = httpx.Response(429, text="slow down", headers={"Retry-After": header})
    with pytest.raises(RateLimited) as raised:
        await client(lambda _: answer, seen).get_current_account("t")
    assert raised.value.retry_after == expected


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (error(409, {"error_summary": "path/not_found/..", "error": {".tag": "path"}}), "path/"),
        (httpx.Response(400, text="Error in call to API function: bad cursor"), "bad cursor"),
        (error(401, {"error_summary": "invalid_access_token/..", "error": {}}), "invalid_access"),
        (error(429, {"error_summary": "too_many_requests/..", "error": {}}), "too_many_requests"),
    ],
)
async def test_errors_carry_the_providers_own_words(answer: httpx.Response, said: str) -> None:
    seen: list[httpx.Request] = []
    with pytest.raises(ProviderError) as raised:
        await client(lambda _: answer, seen).list_folder_continue("token", "cursor")
    assert raised.value.provider_message is not None
    assert said in raised.value.provider_message


async def test_a_refused_code_names_dropbox_error_and_description() -> None:
    seen: list[httpx.Request] = []
    refused = error(
        400, {"error": "invalid_grant", "error_description": "code doesn't exist or has expired"}
    )
    with pytest.raises(ProviderAuthError) as raised:
        await client(lambda _: refused, seen).exchange_code(
            code="c", app_key="k", app_secret="s", redirect_uri=None
        )
    assert raised.value.provider_message == "invalid_grant: code doesn't exist or has expired"
    lost: list[httpx.Request] = []

    def unreachable(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    with pytest.raises(ProviderUnavailable) as no_answer:
        await client(unreachable, lost).exchange_code(
            code="c", app_key="k", app_secret="s", redirect_uri=None
        )
    assert no_answer.value.provider_message is None


@pytest.mark.parametrize("element", ["dropbox", "googledrive"])
async def test_a_token_ends_when_the_runtime_clock_says(element: str) -> None:
    """Both providers' token answers end `expires_in` seconds after the clock's now (a
    test that moves the clock moves token expiry with it), and not at all when unsaid."""
    clock = ManualClock(datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC))
    answers = [{"expires_in": 14400}, {"expires_in": True}, {}]

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"access_token": "at", **answers.pop(0)})

    http = httpx.AsyncClient(transport=httpx.MockTransport(answer))
    made: DropboxClient | DriveClient
    if element == "dropbox":
        made = DropboxClient(DropboxURLs("https://api", "", "", ""), http, clock=clock)
    else:
        made = DriveClient(GoogleURLs.one("https://google.test"), http, clock=clock)
    grant = {"code": "c", "app_key": "k", "app_secret": "s", "redirect_uri": None}
    first = await made.exchange_code(**grant)
    assert first.expires_at == clock.now() + timedelta(seconds=14400)
    assert (await made.exchange_code(**grant)).expires_at is None  # not a number
    assert (await made.exchange_code(**grant)).expires_at is None
    await http.aclose()
