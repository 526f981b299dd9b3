"""The console's pure presenters: what went wrong with an attempt, in plain words, and
the event list's filter read from a page's query."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from relaybox.web.views import event_filter, in_plain_words


@pytest.mark.parametrize(
    ("status", "error", "said"),
    [
        (200, None, None),
        (204, None, None),
        (500, None, "The callback answered 500 Internal Server Error."),
        (404, None, "The callback answered 404 Not Found."),
        (599, None, "The callback answered 599."),
        (
            302,
            None,
            "The callback answered 302 Found: redirects are not followed, so this counts as "
            "a failure.",
        ),
        (
            410,
            None,
            "The callback answered 410 Gone: it asked for no more deliveries, so deliveries "
            "are paused.",
        ),
        (None, "timed out", "No answer within 15 seconds."),
        (
            None,
            "ConnectError: [Errno 111] Connection refused",
            "Could not connect to the callback: [Errno 111] Connection refused.",
        ),
        (None, "RemoteProtocolError: closed", "The connection to the callback broke: closed."),
        (None, "the instance has no callback URL", "The instance has no callback URL."),
        (None, None, None),
    ],
)
def test_an_attempt_in_plain_words(status: int | None, error: str | None, said: str) -> None:
    assert in_plain_words(status, error, 15.0) == said


def test_the_event_filter_reads_the_page_query() -> None:
    kept, problem = event_filter(
        {"type": "DELETED", "status": "failed", "path": " /Docs ", "from": "2026-12-05T14:30"}
    )
    assert problem is None
    assert kept.event_type == "DELETED" and kept.status == "failed"
    assert kept.path_contains == "/Docs"
    assert kept.since == datetime(2026, 12, 5, 14, 30, tzinfo=UTC)
    assert kept.until is None and kept.active


def test_a_bad_filter_is_named_and_ignored() -> None:
    kept, problem = event_filter({"type": "MOVED", "to": "yesterday", "path": "x" * 201})
    assert problem == (
        "Path is longer than 200 characters; type must be one of CREATED, UPDATED, DELETED; "
        "to is not a date and time (like 2026-12-05T14:30)."
    )
    assert not kept.active


def test_no_filter_keeps_everything() -> None:
    kept, problem = event_filter({})
    assert problem is None and not kept.active
