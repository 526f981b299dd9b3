"""The console's pure presenters: what went wrong with an attempt, in plain words, the
event list's filter read from a page's query, and the connect form of each provider."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from relaybox.core.clock import SystemClock
from relaybox.core.errors import InvalidInput
from relaybox.web.providers import Provider, provider
from relaybox.web.views import create_body, event_filter, in_plain_words
from tests.support.memory_connector import MemoryConnector


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


# --- the connect form, per provider ---------------------------------------------------

FORM = {
    "name": "mine",
    "app_key": "client.apps.googleusercontent.com",
    "app_secret": "s3cret",
    "events": "on",
    "callback_url": "https://app.example.com/events",
}
REDIRECT = "https://relaybox.example.com/ui/oauth/callback"


def test_each_provider_offers_the_event_sources_its_connector_can() -> None:
    memory = MemoryConnector(SystemClock())
    said = provider(memory)
    assert said.vendor_types == ("webhooks", "polling")  # it cannot wait: no longpoll
    assert (said.app, said.key_label, said.secret_label) == ("Memory app", "App key", "App secret")
    memory.push = None
    assert provider(memory).vendor_types == ("polling",)  # no push: no webhooks
    memory.waits = True
    assert provider(memory).vendor_types == ("polling", "longpoll")


DRIVE = Provider(
    "googledrive",
    "Google Drive",
    "Google OAuth client",
    "Client ID",
    "Client secret",
    ("webhooks", "polling"),
    "channel",
)


def test_the_connect_form_makes_an_instance_of_the_chosen_provider() -> None:
    body = create_body({**FORM, "vendor_type": "polling"}, REDIRECT, DRIVE)
    assert body["element"] == {"key": "googledrive"}
    assert body["configuration"]["oauth.callback.url"] == REDIRECT
    assert body["configuration"]["event.vendor.type"] == "polling"
    assert create_body(FORM, REDIRECT, DRIVE)["configuration"]["event.vendor.type"] == "webhooks"


def test_longpoll_is_refused_for_a_provider_without_it() -> None:
    with pytest.raises(InvalidInput) as refused:
        create_body({**FORM, "vendor_type": "longpoll"}, REDIRECT, DRIVE)
    assert refused.value.field == "event.vendor.type"
    assert "Google Drive has no longpoll; use webhooks or polling" in refused.value.message
