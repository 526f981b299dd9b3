"""`/ui/`: the web console. Server-rendered pages over the same services as the API.

Signing in checks the credential exactly like the API (`auth.principal_for`) and starts a
server-side session (`web/session.py`); every page sees only its user's organization. POST
forms carry the session's CSRF token. Secrets are never rendered: instances are shown
through `InstanceService.describe` (secrets masked) without their token.

Connecting an account: the user chooses a provider (any connector of the runtime: Dropbox,
Google Drive); the form's values wait in the session while the user consents at that
provider (its connector's `authorize_url`), the OAuth `state` naming them. The provider's
redirect back is a cross-site navigation, on which the browser withholds a SameSite=Strict
cookie, so the callback, when it arrives without the cookie, answers a page that continues
to itself from this site (`hop`). Re-authenticating an instance goes to its own provider.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse, RedirectResponse, Response

from relaybox.api.auth import failed_authentication, principal_for
from relaybox.api.deps import RowId, runtime_of
from relaybox.api.errors import ApiError, input_message
from relaybox.core.clock import utcnow
from relaybox.core.errors import Conflict, InvalidInput, NotFound
from relaybox.services import deliveries
from relaybox.services.instances import InstanceService
from relaybox.store import console_sessions
from relaybox.store.db import transaction
from relaybox.store.events import count_events
from relaybox.web import session as cookies
from relaybox.web.overview import instance_list
from relaybox.web.pages import (
    WEB,
    Console,
    ConsoleRoute,
    Signed,
    checked_form,
    console_page,
    csrf_refused,
    flash_to,
    message,
    page,
    redirect_uri,
    secure,
    signed_in,
)
from relaybox.web.providers import chosen, name_of, provider_of, providers
from relaybox.web.session import Session
from relaybox.web.views import (
    create_body,
    delivery_view,
    edit_body,
    edit_values,
    field_message,
    field_of,
    instance_view,
    shown,
)

STATIC = {"console.css": "text/css", "live.js": "text/javascript"}
CREATED = "The account is connected."
REAUTHENTICATED = "The account is re-authenticated."


router = APIRouter(prefix="/ui", include_in_schema=False, route_class=ConsoleRoute)


# --- static file and sign-in ------------------------------------------------------------


@router.get("/static/{name}")
async def static(name: str) -> Response:
    if name not in STATIC:
        raise NotFound(name)
    return FileResponse(WEB / "static" / name, media_type=STATIC[name])


@router.get("")
async def root() -> Response:
    return RedirectResponse("/ui/", status_code=303)


@router.get("/signin")
async def signin_form(request: Request) -> Response:
    return _signin_page(request, None, status=200)


def _signin_page(request: Request, error: str | None, *, status: int) -> Response:
    token = cookies.signin_token(request)
    answer = page(request, "signin.html", {"error": error, "csrf": token}, status=status)
    cookies.set_signin_token(answer, token, secure=secure(request))
    return answer


@router.post("/signin")
async def signin(request: Request) -> Response:
    runtime = runtime_of(request)
    form = await request.form()
    credential = str(form.get("credential") or "").strip()
    if not cookies.signin_ok(request, str(form.get(cookies.CSRF_FIELD) or "")):
        return _signin_page(request, "The form expired. Please sign in again.", status=403)
    try:
        principal = await principal_for(runtime, credential)
    except ApiError:
        principal = None
        # Only a failure meets the limiter (api/throttle.py): a valid credential signs in.
        if credential and failed_authentication(request) is not None:
            return _signin_page(request, "Too many failed sign-ins; try again later.", status=429)
    if principal is None or principal.instance_id is not None:
        error = "That credential is not valid. Paste the whole User …, Organization … value."
        answer = _signin_page(request, error, status=401)
        cookies.clear(answer, secure=secure(request))
        return answer
    started = Session()
    async with transaction(runtime.sessions) as session:
        await console_sessions.start(
            session, principal.user_id, started.sid, now=utcnow(), expires=started.expires_at
        )
    answer = RedirectResponse("/ui/overview", status_code=303)
    cookies.write(answer, runtime.box, started, secure=secure(request))
    answer.delete_cookie(cookies.SIGNIN_COOKIE, path=cookies.PATH)
    return answer


@router.post("/signout")
async def signout(request: Request, console: Signed) -> Response:
    if await checked_form(request, console) is None:
        return csrf_refused(request, console)
    async with transaction(console.runtime.sessions) as session:
        await console_sessions.end(session, console.session.sid)
    answer = RedirectResponse("/ui/signin", status_code=303)
    cookies.clear(answer, secure=secure(request))
    return answer


# --- instances ----------------------------------------------------------------------------


@router.get("/")
async def instances(request: Request, console: Signed) -> Response:
    runtime = console.runtime
    context = {
        "instances": await instance_list(runtime, console.org_id),
        "providers": providers(runtime),
        "webhook_uri": runtime.settings.dropbox_webhook_uri,
    }
    return console_page(request, console, "instances.html", context)


@router.get("/instances/new")
async def connect_form(request: Request, console: Signed, element: str = "") -> Response:
    """The connect form for the provider `element` names (the first one by default)."""
    offered = chosen(console.runtime, element)
    values = {"element": offered.key, "vendor_type": offered.vendor_types[0], "events": "on"}
    return _connect_page(request, console, values, None)


def _connect_page(
    request: Request, console: Console, values: dict[str, str], error: str | None
) -> Response:
    # Secrets are never sent back: the user types them again after an error.
    kept = {k: v for k, v in values.items() if k not in ("app_secret", "signature_key")}
    context = {
        "console": console,
        "values": kept,
        "error": error,
        "provider": chosen(console.runtime, values.get("element")),
        "providers": providers(console.runtime),
        "redirect_uri": redirect_uri(console.runtime),
    }
    return page(request, "connect.html", context, status=400 if error else 200)


def to_consent(request: Request, console: Console, pending: dict[str, Any]) -> Response:
    """Remember `pending` in the session and send the browser to the consent page of its
    provider (`pending["element"]`)."""
    waiting = cookies.new_pending(pending)
    url = console.runtime.connector(str(pending["element"])).authorize_url(
        app_key=str(pending["app_key"]),
        redirect_uri=redirect_uri(console.runtime),
        state=str(waiting["state"]),
    )
    answer = RedirectResponse(url, status_code=303)
    cookies.write(
        answer, console.runtime.box, console.session.with_pending(waiting), secure=secure(request)
    )
    return answer


@router.post("/instances/new")
async def connect(request: Request, console: Signed) -> Response:
    form = await checked_form(request, console)
    if form is None:
        return csrf_refused(request, console)
    values = {k: v for k, v in form.items() if k != cookies.CSRF_FIELD}
    try:
        offered = provider_of(console.runtime, values.get("element") or "dropbox")
        body = create_body(values, redirect_uri(console.runtime), offered)
    except InvalidInput as exc:
        return _connect_page(request, console, values, input_message(exc))
    app_key = body["configuration"]["oauth.api.key"]
    pending = {"mode": "create", "element": offered.key, "body": body, "app_key": app_key}
    return to_consent(request, console, pending)


@router.get("/oauth/callback")
async def oauth_callback(request: Request) -> Response:
    params = request.query_params
    runtime = runtime_of(request)
    if cookies.read(request, runtime.box) is None and not params.get("hop"):
        # Arrived from the provider without the SameSite=Strict cookie: continue from here.
        query = urlencode([*params.multi_items(), ("hop", "1")])
        return page(request, "hop.html", {"next": f"/ui/oauth/callback?{query}"})
    console = await signed_in(request)
    pending = console.session.pending_for(params.get("state") or "")
    if pending is None:
        return message(
            request,
            "Connection expired",
            "This connection was not started in this session, or took too long. Start again.",
            status=400,
            console=console,
            link=("/ui/instances/new", "Connect an account"),
        )
    element = str(pending.get("element") or "dropbox")
    service = InstanceService(runtime)
    code = params.get("code")
    try:
        if not code:
            reason = params.get("error_description") or params.get("error") or "no code"
            raise InvalidInput(f"{name_of(runtime, element)} did not grant access ({reason})")
        if pending["mode"] == "reauth":
            body = {
                "providerData": {"code": code},
                "configuration": {"oauth.callback.url": redirect_uri(runtime)},
            }
            row = await service.update(console.org_id, int(pending["instance"]), body, reauth=True)
            done = REAUTHENTICATED
        else:
            row = await service.create(
                console.org_id,
                {**pending["body"], "providerData": {"code": code}},
                user_id=console.principal.user_id,
            )
            done = CREATED
    except (InvalidInput, Conflict) as exc:
        text = input_message(exc) if isinstance(exc, InvalidInput) else exc.message
        answer = message(
            request,
            "The account was not connected",
            text,
            status=400,
            console=console,
            link=(f"/ui/instances/new?{urlencode({'element': element})}", "Start again"),
        )
    else:
        answer = RedirectResponse(f"/ui/instances/{row.id}", status_code=303)
        console = replace(console, session=console.session.with_flash(done))
    cookies.write(answer, runtime.box, console.session.with_pending(None), secure=secure(request))
    return answer


# --- one instance ---------------------------------------------------------------------------


async def instance_page(
    request: Request,
    console: Console,
    instance_id: int,
    *,
    error: str | None = None,
    status: int = 200,
) -> Response:
    view = await instance_view(
        console.runtime, console.org_id, instance_id, params=request.query_params
    )
    context = {**view, "error": error, "live_query": str(request.query_params)}
    return console_page(request, console, "instance.html", context, status=status)


@router.get("/instances/{instance_id}")
async def instance(instance_id: RowId, request: Request, console: Signed) -> Response:
    return await instance_page(request, console, instance_id)


async def instance_action(
    request: Request,
    console: Console,
    instance_id: int,
    act: Callable[[dict[str, str]], Awaitable[str | Response]],
    *,
    back: str | None = None,
) -> Response:
    """Check the form's CSRF token, run `act`, then show `back` (the instance page by
    default) with the message `act` returns, once (PRG), or the instance with its error."""
    form = await checked_form(request, console)
    if form is None:
        return csrf_refused(request, console)
    async with transaction(console.runtime.sessions) as session:
        await InstanceService(console.runtime).get(session, console.org_id, instance_id)
    try:
        done = await act(form)
    except InvalidInput as exc:
        return await instance_page(
            request, console, instance_id, error=input_message(exc), status=400
        )
    except Conflict as exc:
        return await instance_page(request, console, instance_id, error=exc.message, status=409)
    if isinstance(done, Response):
        return done
    return flash_to(request, console, back or f"/ui/instances/{instance_id}", done)


@router.post("/instances/{instance_id}/events")
async def toggle_events(instance_id: RowId, request: Request, console: Signed) -> Response:
    async def act(form: dict[str, str]) -> str:
        enabled = form.get("enabled") == "true"
        body = {"configuration": {"event.notification.enabled": enabled}}
        await InstanceService(console.runtime).update(
            console.org_id, instance_id, body, reauth=False
        )
        return "Events are on." if enabled else "Events are off."

    return await instance_action(request, console, instance_id, act)


@router.post("/instances/{instance_id}/subscription")
async def subscription(instance_id: RowId, request: Request, console: Signed) -> Response:
    async def act(form: dict[str, str]) -> str:
        active = form.get("active") == "true"
        await deliveries.set_subscription(console.runtime, console.org_id, instance_id, active)
        if active:
            return "Deliveries resumed; queued notifications are being sent."
        return "Deliveries paused; new notifications wait until you resume."

    return await instance_action(request, console, instance_id, act)


@router.get("/instances/{instance_id}/deliveries/{delivery_id}")
async def delivery(
    instance_id: RowId, delivery_id: str, request: Request, console: Signed
) -> Response:
    view = await delivery_view(console.runtime, console.org_id, instance_id, delivery_id)
    return console_page(request, console, "delivery.html", view)


@router.post("/instances/{instance_id}/deliveries/{delivery_id}/redeliver")
async def redeliver_one(
    instance_id: RowId, delivery_id: str, request: Request, console: Signed
) -> Response:
    async def act(_: dict[str, str]) -> str:
        await deliveries.redeliver_one(console.runtime, console.org_id, instance_id, delivery_id)
        return "The delivery is queued to be sent again."

    back = f"/ui/instances/{instance_id}/deliveries/{quote(delivery_id)}"
    return await instance_action(request, console, instance_id, act, back=back)


@router.post("/instances/{instance_id}/redeliver-failed")
async def redeliver_failed(instance_id: RowId, request: Request, console: Signed) -> Response:
    async def act(_: dict[str, str]) -> str:
        count = await deliveries.redeliver_many(
            console.runtime, console.org_id, instance_id, since=None, status="failed"
        )
        if count == 0:
            return "Nothing to redeliver: no delivery has failed."
        plural = "delivery is" if count == 1 else "deliveries are"
        return f"{count} failed {plural} queued to be sent again."

    return await instance_action(request, console, instance_id, act)


@router.post("/instances/{instance_id}/reauth")
async def reauthenticate(instance_id: RowId, request: Request, console: Signed) -> Response:
    async def act(_: dict[str, str]) -> Response:
        async with transaction(console.runtime.sessions) as session:
            row = await InstanceService(console.runtime).get(session, console.org_id, instance_id)
            app_key, element = row.app_key, row.element_key
        if not app_key:
            raise InvalidInput("this instance has no app key to re-authenticate with")
        pending = {
            "mode": "reauth",
            "element": element,
            "instance": instance_id,
            "app_key": app_key,
        }
        return to_consent(request, console, pending)

    return await instance_action(request, console, instance_id, act)


# --- edit and delete --------------------------------------------------------------------


async def _shown_instance(console: Console, instance_id: int) -> dict[str, Any]:
    service = InstanceService(console.runtime)
    async with transaction(console.runtime.sessions) as session:
        return shown(service, await service.get(session, console.org_id, instance_id))


def _edit_page(
    request: Request,
    console: Console,
    instance: dict[str, Any],
    values: dict[str, Any],
    errors: dict[str, str],
) -> Response:
    context = {
        "instance": instance,
        "values": values,
        "errors": errors,
        "vendor_types": chosen(console.runtime, instance["element"]["key"]).vendor_types,
        "provider": name_of(console.runtime, instance["element"]["key"]),
        "has_signature_key": bool(
            instance["configuration"].get("event.notification.signature.key")
        ),
    }
    return console_page(request, console, "edit.html", context, status=400 if errors else 200)


@router.get("/instances/{instance_id}/edit")
async def edit_form(instance_id: RowId, request: Request, console: Signed) -> Response:
    instance = await _shown_instance(console, instance_id)
    return _edit_page(request, console, instance, edit_values(instance), {})


@router.post("/instances/{instance_id}/edit")
async def edit(instance_id: RowId, request: Request, console: Signed) -> Response:
    form = await checked_form(request, console)
    if form is None:
        return csrf_refused(request, console)
    instance = await _shown_instance(console, instance_id)
    try:
        body = edit_body(form)
        await InstanceService(console.runtime).update(
            console.org_id, instance_id, body, reauth=False
        )
    except InvalidInput as exc:
        # Secrets are never sent back: the signature key is typed again after an error.
        values = {**form, "ordered": form.get("ordered") == "on"}
        field = field_of(exc)
        said = input_message(exc) if field == "form" else field_message(exc)
        return _edit_page(request, console, instance, values, {field: said})
    return flash_to(request, console, f"/ui/instances/{instance_id}", "Changes saved.")


async def _delete_page(
    request: Request, console: Console, instance_id: int, *, wrong: bool
) -> Response:
    instance = await _shown_instance(console, instance_id)
    async with transaction(console.runtime.sessions) as session:
        events = await count_events(session, instance_id)
    context = {"instance": instance, "events": events, "wrong": wrong}
    return console_page(request, console, "delete.html", context, status=400 if wrong else 200)


@router.get("/instances/{instance_id}/delete")
async def delete_form(instance_id: RowId, request: Request, console: Signed) -> Response:
    return await _delete_page(request, console, instance_id, wrong=False)


@router.post("/instances/{instance_id}/delete")
async def delete(instance_id: RowId, request: Request, console: Signed) -> Response:
    form = await checked_form(request, console)
    if form is None:
        return csrf_refused(request, console)
    instance = await _shown_instance(console, instance_id)
    if form.get("confirm", "").strip() != instance["name"]:
        return await _delete_page(request, console, instance_id, wrong=True)
    await InstanceService(console.runtime).delete(console.org_id, instance_id)
    return flash_to(request, console, "/ui/", f"{instance['name']} is deleted.")
