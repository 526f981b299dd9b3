"""The sandboxes' shared kit (relaybox/sandbox_kit): its parts on their own, and the rule
that keeps both sandboxes separate programs."""

import ast
import asyncio
import json
import pathlib
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response

import relaybox
from relaybox.sandbox_kit import control
from relaybox.sandbox_kit.control import ControlError
from relaybox.sandbox_kit.oauth import client_credentials, consenting_account, with_query
from relaybox.sandbox_kit.pages import FilesPage, human_size
from relaybox.sandbox_kit.sender import Sender, Sent
from relaybox.sandbox_kit.statefile import StateFile, content_decoded, with_content
from relaybox.sandbox_kit.tokens import TokenTables

PACKAGE = pathlib.Path(relaybox.__file__).parent


def relaybox_imports(folder: str) -> set[str]:
    """The relaybox packages the modules of ``folder`` import (``relaybox.x.y`` -> ``x``)."""
    found = set()
    for path in (PACKAGE / folder).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            found |= {n.split(".")[1] for n in names if n.startswith("relaybox.")}
    return found


def test_each_sandbox_imports_nothing_of_relaybox_but_itself_and_the_kit() -> None:
    assert relaybox_imports("sandbox_kit") == {"sandbox_kit"}
    assert relaybox_imports("sandbox") == {"sandbox", "sandbox_kit"}
    assert relaybox_imports("gdrive_sandbox") == {"gdrive_sandbox", "sandbox_kit"}


@dataclass
class Item:
    name: str
    content: bytes


def test_content_is_kept_as_base64_and_read_back() -> None:
    fields = with_content(Item("a", b"\x00\xffhi"))
    assert fields == {"name": "a", "content": "AP9oaQ=="}
    assert Item(**content_decoded(fields)) == Item("a", b"\x00\xffhi")


def test_the_state_file_is_written_at_once_outside_a_loop(tmp_path: pathlib.Path) -> None:
    state = {"n": 1}
    path = tmp_path / "deep" / "state.json"
    file = StateFile(path, lambda: state)
    assert file.read() is None
    file.save()
    assert file.read() == {"n": 1}
    assert [p.name for p in path.parent.iterdir()] == ["state.json"]  # no temporary left


async def test_saves_inside_a_loop_are_coalesced(tmp_path: pathlib.Path) -> None:
    dumps: list[int] = []

    def dump() -> dict[str, int]:
        dumps.append(len(dumps) + 1)
        return {"dumps": len(dumps)}

    path = tmp_path / "state.json"
    file = StateFile(path, dump)
    for _ in range(5):
        file.save()
    assert not path.exists()
    await asyncio.sleep(0.3)
    assert dumps == [1] and json.loads(path.read_text()) == {"dumps": 1}
    file.flush()  # nothing pending
    assert dumps == [1]


async def test_flush_writes_a_pending_save_at_once(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "state.json"
    file = StateFile(path, lambda: {"n": 1})
    file.save()
    assert not path.exists()
    file.flush()
    assert file.read() == {"n": 1}


def test_without_a_path_nothing_is_written(tmp_path: pathlib.Path) -> None:
    file = StateFile(None, lambda: {"n": 1})
    file.save()
    file.flush()
    assert file.read() is None and list(tmp_path.iterdir()) == []


def render(data: Any, status: int) -> Response:
    return Response(json.dumps(data), status, media_type="application/json")


class Refused(Exception):
    pass


async def test_control_routes_answer_values_control_errors_and_the_sandbox_s_own() -> None:
    async def echo(request: Request) -> Any:
        data = await control.body(request)
        return {"name": control.text(data, "name"), "on": control.flag(data, "on")}

    async def refuse(request: Request) -> Any:
        raise Refused

    async def crash(request: Request) -> Any:
        raise KeyError("x")

    def failure(error: Exception) -> Response | None:
        return PlainTextResponse("refused", 409) if isinstance(error, Refused) else None

    table: list[tuple[str, control.Handler, str]] = [
        ("/echo", echo, "POST"),
        ("/refuse", refuse, "POST"),
        ("/crash", crash, "POST"),
    ]
    app = Starlette(routes=control.routes(table, render, failure))
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://kit") as http:
        ok = await http.post("/echo", json={"name": "a", "on": True})
        assert (ok.status_code, ok.json()) == (200, {"name": "a", "on": True})
        for content, error in [
            (b"{", "body: not JSON"),
            (b"[]", "body: expected a JSON object"),
            (b"", "name: required string"),
            (b'{"name": ""}', "name: required string"),
            (b'{"name": "a", "on": 1}', "on: expected a boolean"),
        ]:
            answer = await http.post("/echo", content=content)
            assert (answer.status_code, answer.json()) == (400, {"error": error})
        refused = await http.post("/refuse")
        assert (refused.status_code, refused.text) == (409, "refused")
        assert (await http.post("/crash")).status_code == 500


def test_count_fields() -> None:
    assert control.count({}, "count", 1) == 1
    assert control.count({"count": 0}, "count", 1) == 0
    assert control.count({"count": None}, "count", 1) is None
    for wrong in (-1, 1.5, True, "2"):
        with pytest.raises(ControlError, match="count: expected a non-negative integer"):
            control.count({"count": wrong}, "count", 1)
    assert control.text({}, "name", required=False) is None


async def test_a_send_answers_the_status_and_text_or_the_error_instead() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.host == "down.test":
            raise httpx.ConnectError("no route")
        if request.url.host == "refused.test":
            raise ValueError("private address")
        return httpx.Response(201, text=request.method + " " + request.content.decode())

    sender = Sender(retry_base=0.5, retry_cap=3.0)
    sender.transport = httpx.MockTransport(answer)
    assert await sender._send("POST", "http://up.test/", content=b"hi") == Sent(201, "POST hi")
    assert await sender._send("GET", "http://down.test/") == Sent(
        None, error="ConnectError: no route"
    )
    assert await sender._send("GET", "http://refused.test/") == Sent(
        None, error="ValueError: private address"
    )
    assert [sender._backoff(n) for n in range(4)] == [0.5, 1.0, 2.0, 3.0]
    await sender._close_client()


@dataclass
class Code:
    code: str
    user: str
    used: bool = False


@dataclass
class Access:
    token: str
    user: str
    expires_at: float
    revoked: bool = False


@dataclass
class Refresh:
    token: str
    user: str
    revoked: bool = False


def test_token_tables_are_saved_revoked_by_account_and_expired() -> None:
    now = [1000.0]
    tables = TokenTables(lambda: now[0], "user", Code, Access, Refresh)
    tables.codes = {"c1": Code("c1", "ann"), "c2": Code("c2", "bob")}
    tables.access = {"a1": Access("a1", "ann", 2000.0), "a2": Access("a2", "bob", 900.0)}
    tables.refresh = {"r1": Refresh("r1", "ann"), "r2": Refresh("r2", "bob")}
    saved = json.loads(json.dumps(tables.dump()))
    assert saved["codes"][0] == {"code": "c1", "user": "ann", "used": False}
    assert [t["token"] for t in saved["access_tokens"]] == ["a1", "a2"]
    again = TokenTables(lambda: now[0], "user", Code, Access, Refresh)
    again.load(saved)
    assert (again.codes, again.access, again.refresh) == (
        tables.codes,
        tables.access,
        tables.refresh,
    )

    again.revoke_account("ann")
    assert [c.used for c in again.codes.values()] == [True, False]
    assert [t.revoked for t in again.access.values()] == [True, False]
    assert [t.revoked for t in again.refresh.values()] == [True, False]

    again.expire_all()
    assert [t.expires_at for t in again.access.values()] == [1000.0, 900.0]


def test_sizes_and_redirect_queries() -> None:
    assert [human_size(n) for n in (512, 1536, 12 * 1024**2, 3 * 1024**3)] == [
        "512 B",
        "1.5 KB",
        "12.0 MB",
        "3.0 GB",
    ]
    assert with_query("https://a.test/cb?x=1", {"code": "c d"}) == "https://a.test/cb?x=1&code=c+d"


def basic(value: str) -> Request:
    return Request({"type": "http", "headers": [(b"authorization", value.encode())]})


def test_client_credentials_from_basic_auth_or_the_form() -> None:
    form = {"client_id": "id", "client_secret": "secret"}
    assert client_credentials(basic("Basic a2V5OnM6ZWNyZXQ="), form) == ("key", "s:ecret")
    assert client_credentials(basic("Basic !!"), form) == ("", "")
    assert client_credentials(basic("Bearer x"), form) == ("id", "secret")


def test_the_consenting_account_is_new_or_chosen() -> None:
    accounts = {"a1": object()}
    created: list[str] = []

    def create(email: str) -> str:
        created.append(email)
        return "a1"

    assert consenting_account({"new_email": " n@x.test ", "pick": "zz"}, "pick", accounts, create)
    assert created == ["n@x.test"]
    assert consenting_account({"pick": "a1"}, "pick", accounts, create) == "a1"
    assert consenting_account({"pick": "zz"}, "pick", accounts, create) is None


async def test_the_files_page_makes_accounts_and_hands_other_forms_on() -> None:
    page = FilesPage("who")
    accounts: dict[str, str] = {}

    async def show(request: Request) -> Response:
        account_id = page.account_id(request, accounts)
        context = page.context(request, accounts, account_id)
        return PlainTextResponse(f"{context['account_id']} {context['message']}")

    async def act(request: Request, action: str, form: FormData, text: dict[str, str]) -> Response:
        return page.back(request, text.get("who", ""), f"{action} {text['name']}", failed=True)

    def create(email: str, name: str | None) -> str:
        accounts[email.split("@")[0]] = name or email
        return email.split("@")[0]

    app = Starlette(routes=page.routes(show, act, create))
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://kit"
    ) as http:
        assert (await http.get("/_sandbox/ui")).text == " "
        made = await http.post("/_sandbox/ui/accounts", data={"email": " ann@x.test "})
        assert made.status_code == 303
        assert (
            made.headers["location"] == "/_sandbox/ui?who=ann&message=Account+ann%40x.test+is+ready"
        )
        assert (await http.get("/_sandbox/ui", params={"who": "zz"})).text == "ann "
        refused = await http.post("/_sandbox/ui/accounts", data={"email": ""})
        assert refused.headers["location"].endswith("message=Failed%3A+give+an+email&failed=1")
        other = await http.post("/_sandbox/ui/rename", data={"who": "ann", "name": " b "})
        assert other.headers["location"] == "/_sandbox/ui?who=ann&message=rename+b&failed=1"
