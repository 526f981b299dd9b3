"""Rendering the console's pages: templates, security headers, the signed-in caller, CSRF.

Console routes (`web/routes.py`) use `ConsoleRoute`, so a missing session answers a
redirect to the sign-in form and a missing object an HTML 404 page, never the API's JSON.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from markupsafe import Markup, escape

from relaybox.api.auth import Principal
from relaybox.api.deps import runtime_of
from relaybox.core.clock import utcnow
from relaybox.core.errors import NotFound
from relaybox.runtime import Runtime
from relaybox.store import console_sessions
from relaybox.store.db import transaction
from relaybox.web import session as cookies
from relaybox.web.session import Session

WEB = Path(__file__).resolve().parent
templates = Jinja2Templates(directory=str(WEB / "templates"))


def breakable(text: object, separators: str = "/") -> Markup:
    """`text`, escaped, with a line-break opportunity after each separator: long paths
    and keys wrap at their slashes or dots, not letter by letter."""
    escaped = str(escape(str(text)))
    for separator in separators:
        escaped = escaped.replace(separator, f"{separator}<wbr>")
    return Markup(escaped)  # noqa: S704  (escaped above; only <wbr> added)


templates.env.filters["breakable"] = breakable


class SignInRequired(Exception):
    """No valid session: the page answers a redirect to the sign-in form."""


class ConsoleRoute(APIRoute):
    """Console routes answer HTML: sign-in redirects and not-found pages, never JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def run(request: Request) -> Response:
            try:
                answer = await handler(request)
            except SignInRequired:
                return RedirectResponse("/ui/signin", status_code=303)
            except (NotFound, RequestValidationError):
                answer = message(request, "Not found", "There is nothing here.", status=404)
            answer.headers.update(SECURITY_HEADERS)
            return answer

        return run


SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


@dataclass(frozen=True)
class Console:
    """A signed-in request: its session, its caller and the runtime."""

    session: Session
    principal: Principal
    runtime: Runtime

    @property
    def org_id(self) -> int:
        return self.principal.org_id


def secure(request: Request) -> bool:
    """Whether cookies get `Secure`: the request came over https, or the server is https."""
    public = runtime_of(request).settings.public_url
    return request.url.scheme == "https" or public.startswith("https:")


def redirect_uri(runtime: Runtime) -> str:
    return f"{runtime.settings.public_url.rstrip('/')}/ui/oauth/callback"


async def signed_in(request: Request) -> Console:
    """The request's live session (its cookie, and its row in store/console_sessions.py)."""
    runtime = runtime_of(request)
    current = cookies.read(request, runtime.box)
    if current is None:
        raise SignInRequired
    async with transaction(runtime.sessions) as session:
        user = await console_sessions.user_of(session, current.sid, now=utcnow())
    if user is None:
        raise SignInRequired
    return Console(current, Principal(user.org_id, user.id), runtime)


Signed = Annotated[Console, Depends(signed_in)]


def page(request: Request, name: str, context: dict[str, Any], *, status: int = 200) -> Response:
    answer = templates.TemplateResponse(request, name, context, status_code=status)
    csp = (
        "default-src 'none'; style-src 'self'; img-src 'self'; script-src 'self'; "
        "connect-src 'self'; base-uri 'none'; "
        f"frame-ancestors 'none'; form-action 'self' {consent_origins(request)}"
    )
    answer.headers["Content-Security-Policy"] = csp
    return answer


def console_page(
    request: Request,
    console: Console,
    name: str,
    context: dict[str, Any],
    *,
    status: int = 200,
) -> Response:
    """A signed-in page; it shows the session's flash message, if any, and drops it."""
    flash = console.session.flash
    answer = page(request, name, {"console": console, "notice": flash, **context}, status=status)
    if flash:
        session = console.session.with_flash(None)
        cookies.write(answer, console.runtime.box, session, secure=secure(request))
    return answer


def flash_to(request: Request, console: Console, url: str, text: str) -> Response:
    """Redirect to `url` (POST, redirect, GET), which then tells the user `text` once."""
    answer = RedirectResponse(url, status_code=303)
    session = console.session.with_flash(text)
    cookies.write(answer, console.runtime.box, session, secure=secure(request))
    return answer


def consent_origins(request: Request) -> str:
    """Every provider's consent page origin: the connect and re-authenticate forms answer a
    redirect there, which the browser checks against `form-action` too."""
    runtime = runtime_of(request)
    return " ".join(sorted({c.consent_origin() for c in runtime.connectors.values()}))


def message(
    request: Request,
    title: str,
    text: str,
    *,
    status: int,
    console: Console | None = None,
    link: tuple[str, str] | None = None,
) -> Response:
    context = {"title": title, "text": text, "console": console, "link": link}
    return page(request, "message.html", context, status=status)


def csrf_refused(request: Request, console: Console) -> Response:
    return message(
        request,
        "Form expired",
        "This form could not be checked. Reload the page and try again.",
        status=403,
        console=console,
    )


async def checked_form(request: Request, console: Console) -> dict[str, str] | None:
    """The POSTed form as text fields, or None when its CSRF token is not the session's."""
    form = await request.form()
    fields = {key: value for key, value in form.items() if isinstance(value, str)}
    return fields if console.session.csrf_ok(fields.get(cookies.CSRF_FIELD)) else None
