"""The sandboxes' HTML pages: templates that extend the kit's, and the files page's
plumbing (which account it shows, its redirects back with a message, new accounts).

Templates are looked up in the sandbox's own folder first, then in the kit's
(``kit/base.html``: the page and its styles, themed by the sandbox's ``base.html``;
``kit/files.html``: the files page's frame; ``kit/consent.html``: the consent page's
account choice).
"""

import pathlib
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

TEMPLATES = pathlib.Path(__file__).parent / "templates"
UI = "/_sandbox/ui"

Action = Callable[[Request, str, FormData, dict[str, str]], Awaitable[Response]]
"""A form's action on the files page: ``act(request, action, form, text)`` (``text``: the
form's text fields, stripped)."""


def templates(directory: pathlib.Path) -> Jinja2Templates:
    """The sandbox's templates in ``directory``, then the kit's."""
    return Jinja2Templates(directory=[directory, TEMPLATES])


def human_size(size: int) -> str:
    """``512 B``, ``1.5 KB``, ``12.0 MB``."""
    if size < 1024:
        return f"{size} B"
    value = size / 1024
    for unit in ("KB", "MB"):
        if value < 1024:
            return f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"


class FilesPage:
    """``/_sandbox/ui``: the account it shows is the query parameter ``param``."""

    def __init__(self, param: str) -> None:
        self.param = param

    def account_id(self, request: Request, accounts: Mapping[str, Any]) -> str:
        """The account asked for, or else the first one ("" when there is none)."""
        account_id = request.query_params.get(self.param, "")
        return account_id if account_id in accounts else next(iter(accounts), "")

    def context(
        self, request: Request, accounts: Mapping[str, Any], account_id: str
    ) -> dict[str, Any]:
        """What ``kit/files.html`` shows; the sandbox adds its files."""
        return {
            "root": request.scope.get("root_path", ""),
            "param": self.param,
            "accounts": list(accounts.values()),
            "choices": list(accounts.items()),
            "account_id": account_id,
            "account": accounts.get(account_id),
            "message": request.query_params.get("message", ""),
            "failed": request.query_params.get("failed") == "1",
        }

    def back(
        self, request: Request, account_id: str, message: str = "", failed: bool = False
    ) -> Response:
        """To the page showing ``account_id``, with ``message``."""
        query = {self.param: account_id, **({"message": message} if message else {})}
        if failed:
            query["failed"] = "1"
        url = f"{request.scope.get('root_path', '')}{UI}?{urlencode(query)}"
        return RedirectResponse(url, 303)

    def routes(
        self,
        page: Callable[[Request], Awaitable[Response]],
        act: Action,
        create_account: Callable[[str, str | None], str],
    ) -> list[Route]:
        """``GET /_sandbox/ui`` (``page``) and its forms' ``POST /_sandbox/ui/{action}``:
        ``accounts`` makes an account (``create_account(email, display_name)`` answers its
        id), ``act`` does the rest."""

        async def post(request: Request) -> Response:
            form = await request.form()
            action = request.path_params["action"]
            text = {k: v.strip() for k, v in form.items() if isinstance(v, str)}
            if action != "accounts":
                return await act(request, action, form, text)
            email = text.get("email", "")
            if not email:
                return self.back(request, "", "Failed: give an email", failed=True)
            account_id = create_account(email, text.get("display_name") or None)
            return self.back(request, account_id, f"Account {email} is ready")

        return [
            Route(UI, page, methods=["GET"]),
            Route(UI + "/{action}", post, methods=["POST"]),
        ]
