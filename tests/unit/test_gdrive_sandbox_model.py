"""The Google Drive sandbox's model, without HTTP: a drive and its change feed, partial
responses, the search query, OAuth grants, page tokens, channels and the state file."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from relaybox.gdrive_sandbox import fields, query
from relaybox.gdrive_sandbox.drive import Drive
from relaybox.gdrive_sandbox.errors import GoogleError, OAuthError
from relaybox.gdrive_sandbox.model import FOLDER
from relaybox.gdrive_sandbox.state import DriveSandbox, WatchRequest
from relaybox.gdrive_sandbox.tokens import DRIVE, TokenRejected

NOW = 1_700_000_000.0
REDIRECT = "https://app.example.com/cb"


def feed(drive: Drive, start: int = 0, size: int = 100, removed: bool = True) -> list[Any]:
    page, _ = drive.changes(start, size, removed)
    return [(c.file_id, c.removed) for c in page]


def error_of(raised: pytest.ExceptionInfo[GoogleError]) -> tuple[int, str]:
    return raised.value.code, raised.value.reason


# ----------------------------------------------------------------- the drive


def test_the_feed_names_each_file_once_in_its_latest_state() -> None:
    drive = Drive("0Aroot", NOW)
    a = drive.create("a.txt", NOW)
    b = drive.create("b.txt", NOW, content=b"one")
    drive.update(a.id, NOW + 1, name="a2.txt")
    drive.update(b.id, NOW + 2, content=b"two")
    assert feed(drive) == [(a.id, False), (b.id, False)]
    assert drive.files[a.id].name == "a2.txt" and drive.files[b.id].content == b"two"
    versions = (drive.files[a.id].version, drive.files[b.id].version)
    assert versions[1] > versions[0] > 1  # versions grow with every change
    middle = drive.latest()
    drive.update(a.id, NOW + 3, name="a3.txt")
    assert feed(drive, middle) == [(a.id, False)]
    unchanged = drive.latest()
    drive.update(a.id, NOW + 4, name="a3.txt")  # the same name: no change at all
    assert drive.latest() == unchanged


def test_the_feed_pages_and_says_where_to_go_on() -> None:
    drive = Drive("0Aroot", NOW)
    made = [drive.create(f"f{n}", NOW).id for n in range(5)]
    page, following = drive.changes(0, 2, True)
    assert [c.file_id for c in page] == made[:2] and following == 2
    page, following = drive.changes(following, 2, True)
    assert [c.file_id for c in page] == made[2:4] and following == 4
    page, following = drive.changes(following, 2, True)
    assert [c.file_id for c in page] == made[4:] and following is None


def test_trashing_a_folder_trashes_its_content_and_restoring_brings_back_only_that() -> None:
    drive = Drive("0Aroot", NOW)
    folder = drive.create("F", NOW, mime_type=FOLDER)
    inner = drive.create("in.txt", NOW, parents=[folder.id])
    own = drive.create("own.txt", NOW, parents=[folder.id])
    drive.update(own.id, NOW, trashed=True)  # trashed by itself first
    start = drive.latest()
    drive.update(folder.id, NOW, trashed=True)
    assert feed(drive, start) == [(folder.id, False), (inner.id, False)]
    assert inner.trashed and not inner.explicitly_trashed and folder.explicitly_trashed
    drive.update(folder.id, NOW, trashed=False)
    assert not folder.trashed and not inner.trashed and own.trashed


def test_deleting_a_folder_removes_everything_below_it() -> None:
    drive = Drive("0Aroot", NOW)
    folder = drive.create("F", NOW, mime_type=FOLDER)
    sub = drive.create("S", NOW, mime_type=FOLDER, parents=[folder.id])
    deep = drive.create("deep.txt", NOW, parents=[sub.id])
    start = drive.latest()
    gone = drive.delete(folder.id, NOW)
    assert [f.id for f in gone] == [folder.id, sub.id, deep.id]
    assert feed(drive, start) == [(folder.id, True), (sub.id, True), (deep.id, True)]
    assert feed(drive, start, removed=False) == []
    assert feed(drive, removed=False) == []  # created then removed: nothing left to show
    with pytest.raises(GoogleError) as missing:
        drive.get(deep.id)
    assert error_of(missing) == (404, "notFound")


def test_moving_a_folder_is_one_change_and_parents_stay_single_and_acyclic() -> None:
    drive = Drive("0Aroot", NOW)
    a = drive.create("A", NOW, mime_type=FOLDER)
    b = drive.create("B", NOW, mime_type=FOLDER)
    inner = drive.create("in.txt", NOW, parents=[a.id])
    start = drive.latest()
    drive.update(a.id, NOW, add_parents=[b.id], remove_parents=["root"])
    assert feed(drive, start) == [(a.id, False)] and drive.path(inner) == "/B/A/in.txt"
    with pytest.raises(GoogleError) as added:
        drive.update(inner.id, NOW, add_parents=[b.id])
    assert error_of(added) == (403, "cannotAddParent")
    with pytest.raises(GoogleError) as cycle:
        drive.update(b.id, NOW, add_parents=[a.id], remove_parents=["root"])
    assert error_of(cycle) == (400, "badRequest")
    with pytest.raises(GoogleError) as not_folder:
        drive.create("x", NOW, parents=[inner.id])
    assert error_of(not_folder) == (403, "parentNotAFolder")
    with pytest.raises(GoogleError) as root:
        drive.delete("root", NOW)
    assert error_of(root) == (403, "insufficientFilePermissions")
    assert drive.find("/B/A/in.txt").id == inner.id


# ------------------------------------------------------------ partial responses


def test_fields_select_nested_and_slashed_paths() -> None:
    value = {
        "kind": "drive#changeList",
        "nextPageToken": "7",
        "changes": [
            {"fileId": "1", "removed": False, "file": {"id": "1", "name": "a", "size": "3"}},
            {"fileId": "2", "removed": True},
        ],
    }
    picked = fields.apply(value, "nextPageToken, changes(fileId,file/name)", fields.CHANGE_LIST)
    assert picked == {
        "nextPageToken": "7",
        "changes": [{"fileId": "1", "file": {"name": "a"}}, {"fileId": "2"}],
    }
    assert fields.apply(value, "*", fields.CHANGE_LIST) == value
    assert fields.apply(value, "changes/file(id),changes/removed", fields.CHANGE_LIST) == {
        "changes": [{"removed": False, "file": {"id": "1"}}, {"removed": True}]
    }
    for bad in ("changes(fileId", "changes/nope", "nope", ",", "changes()"):
        with pytest.raises(GoogleError) as refused:
            fields.apply(value, bad, fields.CHANGE_LIST)
        assert error_of(refused) == (400, "invalidParameter"), bad


# ---------------------------------------------------------------------- q


def test_the_search_query_subset() -> None:
    drive = Drive("0Aroot", NOW)
    folder = drive.create("Reports", NOW, mime_type=FOLDER)
    drive.create("q1 summary.txt", NOW + 10, parents=[folder.id], mime_type="text/plain")
    old = drive.create("old's notes", NOW + 20)
    drive.update(old.id, NOW + 30, trashed=True)

    def names(text: str) -> list[str]:
        match = query.predicate(text, drive)
        return [f.name for f in drive.all_files() if match(f)]

    assert names("") == ["Reports", "q1 summary.txt", "old's notes"]
    assert names("trashed = false") == ["Reports", "q1 summary.txt"]
    assert names(f"'{folder.id}' in parents") == ["q1 summary.txt"]
    assert names("'root' in parents and not trashed = true") == ["Reports"]
    assert names(f"mimeType = '{FOLDER}' or name contains 'SUMM'") == ["Reports", "q1 summary.txt"]
    assert names(r"name = 'old\'s notes'") == ["old's notes"]
    assert names("(trashed = true or mimeType != 'text/plain') and starred = false") == [
        "Reports",
        "old's notes",
    ]
    assert names("modifiedTime > '2023-11-14T22:13:25Z'") == ["q1 summary.txt", "old's notes"]
    for bad in ("name", "name = ", "size > 3", "'x' in owners", "trashed = maybe", "(name = 'a'"):
        with pytest.raises(GoogleError) as refused:
            query.predicate(bad, drive)
        assert error_of(refused) == (400, "invalid"), bad
    by_name = query.ordered(list(drive.all_files()), "folder,name desc")
    assert [f.name for f in by_name] == ["Reports", "q1 summary.txt", "old's notes"]
    with pytest.raises(GoogleError):
        query.ordered([], "size")


# ----------------------------------------------------------------- OAuth grants


class Clock:
    def __init__(self) -> None:
        self.now = NOW

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def sandbox(clock: Clock) -> DriveSandbox:
    return DriveSandbox(push_delay=0, clock=clock)


def consent(sandbox: DriveSandbox, client: str, who: str, **kwargs: Any) -> Any:
    code = sandbox.authorize(client, who, REDIRECT, [DRIVE], **kwargs)
    return sandbox.tokens.exchange_code(client, code, REDIRECT)


def test_a_refresh_token_comes_with_offline_access_on_first_consent_or_when_asked_again(
    sandbox: DriveSandbox, clock: Clock
) -> None:
    app = sandbox.register_app(redirect_uris=[REDIRECT])
    who = sandbox.create_account("ann@example.com").permission_id
    assert consent(sandbox, app.client_id, who, offline=False)[1] is None
    access, refresh = consent(sandbox, app.client_id, who, offline=True, consent_shown=False)
    assert refresh is not None  # the first offline grant
    assert consent(sandbox, app.client_id, who, offline=True, consent_shown=False)[1] is None
    assert consent(sandbox, app.client_id, who, offline=True, consent_shown=True)[1] is not None

    sandbox.tokens.check(access.token)
    clock.now += 3599
    with pytest.raises(TokenRejected):
        sandbox.tokens.check(access.token)
    fresh = sandbox.tokens.use_refresh_token(app.client_id, refresh.token)
    assert sandbox.tokens.check(fresh.token).permission_id == who
    with pytest.raises(OAuthError) as other_client:
        sandbox.tokens.use_refresh_token("someone-else", refresh.token)
    assert other_client.value.error == "unauthorized_client"


def test_codes_are_single_use_bound_to_their_redirect_and_short_lived(
    sandbox: DriveSandbox, clock: Clock
) -> None:
    app = sandbox.register_app()
    who = sandbox.create_account("bo@example.com").permission_id
    code = sandbox.authorize(app.client_id, who, REDIRECT, [DRIVE], offline=True)
    with pytest.raises(OAuthError) as elsewhere:
        sandbox.tokens.exchange_code(app.client_id, code, "https://evil.example/cb")
    assert elsewhere.value.error == "redirect_uri_mismatch"
    sandbox.tokens.exchange_code(app.client_id, code, REDIRECT)
    with pytest.raises(OAuthError) as reused:
        sandbox.tokens.exchange_code(app.client_id, code, REDIRECT)
    assert reused.value.error == "invalid_grant"
    late = sandbox.authorize(app.client_id, who, REDIRECT, [DRIVE], offline=True)
    clock.now += 601
    with pytest.raises(OAuthError):
        sandbox.tokens.exchange_code(app.client_id, late, REDIRECT)


def test_revoking_any_token_of_a_grant_revokes_the_grant(sandbox: DriveSandbox) -> None:
    app = sandbox.register_app()
    who = sandbox.create_account("cy@example.com").permission_id
    access, refresh = consent(sandbox, app.client_id, who, offline=True)
    later = sandbox.tokens.use_refresh_token(app.client_id, refresh.token)
    sandbox.tokens.revoke(access.token)
    for token in (access.token, later.token):
        with pytest.raises(TokenRejected):
            sandbox.tokens.check(token)
    with pytest.raises(OAuthError) as refused:
        sandbox.tokens.use_refresh_token(app.client_id, refresh.token)
    assert (refused.value.error, refused.value.description) == (
        "invalid_grant",
        "Token has been expired or revoked.",
    )
    with pytest.raises(OAuthError) as again:
        sandbox.tokens.revoke(refresh.token)
    assert again.value.error == "invalid_token"


# ------------------------------------------------------------ page tokens


def test_page_tokens_are_decimal_positions_and_a_reset_voids_them(sandbox: DriveSandbox) -> None:
    who = sandbox.create_account("di@example.com").permission_id
    first = sandbox.start_page_token(who)
    assert first == "1" and sandbox.position(who, first) == 0
    sandbox.change(who, lambda d: d.create("a", NOW))
    assert sandbox.start_page_token(who) == "2"
    for bad in ("BOGUS", "3", "0", "-1", "9" * 40):
        with pytest.raises(GoogleError) as refused:
            sandbox.position(who, bad)
        assert error_of(refused) == (400, "invalid"), bad
    sandbox.reset_page_tokens(who)
    with pytest.raises(GoogleError):
        sandbox.position(who, first)
    assert sandbox.position(who, sandbox.start_page_token(who)) == 1


# --------------------------------------------------------------- channels


def watched(sandbox: DriveSandbox, channel_id: str, expiration_ms: int | None = None) -> Any:
    app = sandbox.register_app()
    who = next(iter(sandbox.accounts))
    access, _ = consent(sandbox, app.client_id, who, offline=False)
    request = WatchRequest(channel_id, "http://127.0.0.1:9/hook", "tok", expiration_ms)
    return access, sandbox.watch(access, request, "http://sandbox/drive/v3/changes")


def test_channels_live_until_stopped_or_expired(sandbox: DriveSandbox, clock: Clock) -> None:
    who = sandbox.create_account("ed@example.com").permission_id
    access, channel = watched(sandbox, "c1")
    assert channel.expiration_ms == int((NOW + 3600) * 1000) and channel.message_number == 1
    assert sandbox.live_channels(who) == [channel]
    _, short = watched(sandbox, "c2", int((NOW + 10) * 1000))
    _, capped = watched(sandbox, "c3", int((NOW + 30 * 86400) * 1000))
    assert capped.expiration_ms == int((NOW + 7 * 86400) * 1000)
    with pytest.raises(GoogleError) as past:
        watched(sandbox, "c4", int((NOW - 1) * 1000))
    assert error_of(past) == (400, "invalid")
    clock.now += 11
    assert short not in sandbox.live_channels(who) and channel in sandbox.live_channels(who)
    with pytest.raises(GoogleError) as foreign:
        sandbox.stop_channel(access, "c2", short.resource_id)  # another app's channel
    assert error_of(foreign) == (404, "notFound")
    sandbox.stop_channel(access, "c1", channel.resource_id)
    assert channel.stopped and channel not in sandbox.live_channels(who)
    with pytest.raises(GoogleError):
        sandbox.stop_channel(access, "c1", channel.resource_id)


async def test_the_sender_numbers_coalesces_retries_and_stops(sandbox: DriveSandbox) -> None:
    answers = [503, 200, 200, 404, 200]
    seen: list[tuple[str, str]] = []
    arrived = asyncio.Event()

    def answer(request: httpx.Request) -> httpx.Response:
        headers = request.headers
        seen.append((headers["x-goog-resource-state"], headers["x-goog-message-number"]))
        arrived.set()
        return httpx.Response(answers[len(seen) - 1])

    async def received(count: int) -> None:
        while len(seen) < count:
            arrived.clear()
            await arrived.wait()

    sandbox.push.transport = httpx.MockTransport(answer)
    sandbox.push.retry_base = 0
    who = sandbox.create_account("fa@example.com").permission_id
    access, channel = watched(sandbox, "c1")  # sync (1): 503, then retried: 200
    sandbox.change(who, lambda d: d.create("a", NOW))  # change (2)
    sandbox.change(who, lambda d: d.create("b", NOW))  # coalesced with (2), not yet sent
    await asyncio.wait_for(received(3), 5)
    sandbox.change(who, lambda d: d.create("c", NOW))  # change (3): 404, not retried
    await asyncio.wait_for(received(4), 5)
    sandbox.change(who, lambda d: d.create("d", NOW))  # change (4)
    await asyncio.wait_for(received(5), 5)
    assert seen == [("sync", "1"), ("sync", "1"), ("change", "2"), ("change", "3"), ("change", "4")]
    statuses = [e.get("status") for e in sandbox.push.log if "status" in e]
    assert statuses == [503, 200, 200, 404, 200]
    assert any(e.get("skipped", "").startswith("coalesced") for e in sandbox.push.log)
    sandbox.stop_channel(access, "c1", channel.resource_id)
    sandbox.change(who, lambda d: d.create("e", NOW))
    assert channel.message_number == 4 and sandbox.live_channels(who) == []
    await sandbox.aclose()


# ------------------------------------------------------------- the state file


def test_the_state_file_keeps_everything_across_restarts(tmp_path: Path, clock: Clock) -> None:
    path = tmp_path / "gdrive.json"
    first = DriveSandbox(push_delay=0, state_file=path, clock=clock)
    app = first.register_app(name="Mine", redirect_uris=[REDIRECT])
    who = first.create_account("gu@example.com", "Gu Example").permission_id
    folder = first.change(who, lambda d: d.create("F", NOW, mime_type=FOLDER))
    first.change(who, lambda d: d.create("f.bin", NOW, parents=[folder.id], content=b"\x00\x01"))
    access, refresh = consent(first, app.client_id, who, offline=True)
    first.reset_page_tokens(who)
    first.advance(120)
    first.watch(access, WatchRequest("c1", "http://127.0.0.1:9/h", None, None), "http://x")
    second = DriveSandbox(push_delay=0, state_file=path, clock=clock)
    assert second.apps[app.client_id].redirect_uris == [REDIRECT]
    assert second.accounts[who].display_name == "Gu Example" and second.time_offset == 120
    drive = second.drives[who]
    assert [drive.path(f) for f in drive.all_files()] == ["/F", "/F/f.bin"]
    assert drive.find("/F/f.bin").content == b"\x00\x01" and drive.serial == 3
    assert second.start_page_token(who) == first.start_page_token(who)
    assert second.tokens.check(access.token).permission_id == who
    assert second.tokens.use_refresh_token(app.client_id, refresh.token).permission_id == who
    assert [c.id for c in second.live_channels(who)] == ["c1"]
    assert next(iter(second.channels.values())).message_number == 1
