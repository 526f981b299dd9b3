"""Google OAuth 2.0: the consent page, the token endpoint, revocation.

- ``GET /o/oauth2/v2/auth`` (accounts.google.com): checks the client, the redirect URI,
  ``response_type=code`` and ``scope`` (errors are shown on the page, as Google does, never
  sent to an unchecked redirect URI), then asks which account consents;
  ``POST /o/oauth2/v2/auth`` records the answer and redirects with ``code`` and
  ``scope`` (or ``error=access_denied``), ``state`` echoed.
- ``POST /token`` (oauth2.googleapis.com): ``authorization_code`` and ``refresh_token``
  grants; client credentials in the form or HTTP Basic.
- ``POST /revoke``: ``token`` in the query or the form; revokes the whole grant.
"""

import asyncio
import json

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from relaybox.gdrive_sandbox.errors import JSON, NO_STORE, OAuthError, json_response
from relaybox.gdrive_sandbox.model import App
from relaybox.gdrive_sandbox.state import DriveSandbox
from relaybox.gdrive_sandbox.tokens import ACCESS_TOKEN_LIFETIME, KNOWN_SCOPES
from relaybox.sandbox_kit.oauth import client_credentials, consenting_account, with_query

AUTHORIZE = "/o/oauth2/v2/auth"
OAUTH_DEFAULTS = {400: "invalid_request", 401: "invalid_client", 403: "access_denied"}


async def apply_fault(sandbox: DriveSandbox, method: str) -> None:
    """Use up a fault of ``oauth2.token`` / ``oauth2.revoke``: wait its delay, raise its error
    as the OAuth endpoint answers one (``{"error", "error_description"}``)."""
    fault = sandbox.faults.take(method)
    if fault is None:
        return
    if fault.delay_ms:
        await asyncio.sleep(fault.delay_ms / 1000)
    if fault.status >= 400:
        error = fault.reason or OAUTH_DEFAULTS.get(fault.status, "internal_failure")
        headers = {} if fault.retry_after is None else {"Retry-After": str(fault.retry_after)}
        raise OAuthError(error, "Sandbox fault", fault.status, headers)


async def _form(request: Request) -> dict[str, str]:
    """The request's parameters: an urlencoded form or a JSON object (google-auth may send
    either), and the query string."""
    merged = dict(request.query_params)
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            data = json.loads(await request.body() or b"{}")
        except ValueError:
            raise OAuthError("invalid_request", "Invalid JSON payload") from None
        if isinstance(data, dict):
            merged.update({k: v for k, v in data.items() if isinstance(v, str)})
        return merged
    form = await request.form()
    merged.update({k: v for k, v in form.items() if isinstance(v, str)})
    return merged


def consent_problem(sandbox: DriveSandbox, params: dict[str, str]) -> tuple[int, str] | None:
    """What Google's consent page would show instead of asking (status, ``error: text``)."""
    app = sandbox.apps.get(params.get("client_id", ""))
    if app is None:
        return 401, "invalid_client: The OAuth client was not found."
    redirect = params.get("redirect_uri", "")
    if not redirect:
        return 400, "invalid_request: Missing required parameter: redirect_uri"
    if not app.allows(redirect):
        return 400, (
            "redirect_uri_mismatch: You can't sign in to this app because it doesn't comply "
            f"with Google's OAuth 2.0 policy (redirect_uri={redirect})."
        )
    response_type = params.get("response_type")
    if not response_type:
        return 400, "invalid_request: Required parameter is missing: response_type"
    if response_type != "code":
        return 400, f"unsupported_response_type: Invalid response_type: {response_type}"
    scopes = params.get("scope", "").split()
    if not scopes:
        return 400, "invalid_request: Missing required parameter: scope"
    unknown = [s for s in scopes if s not in KNOWN_SCOPES]
    if unknown:
        return 400, f"invalid_scope: Some requested scopes were invalid: {', '.join(unknown)}"
    if params.get("access_type", "online") not in ("online", "offline"):
        return 400, "invalid_request: Invalid access_type"
    return None


def routes(sandbox: DriveSandbox, templates: Jinja2Templates) -> list[Route]:
    async def authorize_page(request: Request) -> Response:
        params = dict(request.query_params)
        problem = consent_problem(sandbox, params)
        app: App | None = sandbox.apps.get(params.get("client_id", ""))
        prompt = params.get("prompt", "").split()
        if problem is None and "none" in prompt:
            extra = {"state": params["state"]} if params.get("state") else {}
            target = with_query(params["redirect_uri"], {"error": "interaction_required", **extra})
            return RedirectResponse(target, 302)
        context = {
            "root": request.scope.get("root_path", ""),
            "action": AUTHORIZE,
            "app": app,
            "params": {
                k: params.get(k, "")
                for k in ("client_id", "redirect_uri", "scope", "state", "access_type", "prompt")
            },
            "scopes": params.get("scope", "").split(),
            "accounts": list(sandbox.accounts.values()),
            "hint": params.get("login_hint", ""),
            "error": problem[1] if problem else None,
        }
        status = problem[0] if problem else 200
        return templates.TemplateResponse(request, "authorize.html", context, status_code=status)

    async def authorize_decision(request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        problem = consent_problem(sandbox, {**form, "response_type": "code"})
        if problem is not None:
            return Response(problem[1], problem[0], media_type="text/plain")
        redirect_uri, state = form["redirect_uri"], form.get("state", "")
        extra = {"state": state} if state else {}
        if form.get("decision") != "allow":
            return RedirectResponse(
                with_query(redirect_uri, {"error": "access_denied", **extra}), 302
            )
        permission_id = consenting_account(
            form,
            "permission_id",
            sandbox.accounts,
            lambda e: sandbox.create_account(e).permission_id,
        )
        if permission_id is None:
            return Response("Choose an account", 400, media_type="text/plain")
        scope = form["scope"]
        code = sandbox.authorize(
            form["client_id"],
            permission_id,
            redirect_uri,
            scope.split(),
            offline=form.get("access_type") == "offline",
            consent_shown="consent" in form.get("prompt", "").split(),
        )
        target = with_query(
            redirect_uri,
            {**extra, "code": code, "scope": scope, "authuser": "0", "prompt": "consent"},
        )
        return RedirectResponse(target, 302)

    async def token(request: Request) -> Response:
        sandbox.start()
        try:
            await apply_fault(sandbox, "oauth2.token")
            form = await _form(request)
            body = _grant(sandbox, request, form)
        except OAuthError as error:
            return error.response()
        sandbox.save()
        return json_response(body, headers=NO_STORE)

    async def revoke(request: Request) -> Response:
        try:
            await apply_fault(sandbox, "oauth2.revoke")
            form = await _form(request)
            given = form.get("token", "")
            if not given:
                raise OAuthError("invalid_request", "Missing required parameter: token")
            sandbox.tokens.revoke(given)
        except OAuthError as error:
            return error.response()
        sandbox.save()
        return json_response({}, headers=NO_STORE)

    return [
        Route(AUTHORIZE, authorize_page, methods=["GET"]),
        Route(AUTHORIZE, authorize_decision, methods=["POST"]),
        Route("/token", token, methods=["POST"]),
        Route("/revoke", revoke, methods=["POST"]),
    ]


def _grant(sandbox: DriveSandbox, request: Request, form: dict[str, str]) -> JSON:
    key, secret = client_credentials(request, form)
    app = sandbox.apps.get(key)
    if not key:
        raise OAuthError("invalid_request", "Could not determine client ID from request.")
    if app is None:
        raise OAuthError("invalid_client", "The OAuth client was not found.", 401)
    if app.client_secret != secret:
        raise OAuthError("invalid_client", "Unauthorized", 401)
    grant = form.get("grant_type", "")
    if grant == "authorization_code":
        for name in ("code", "redirect_uri"):
            if not form.get(name):
                raise OAuthError("invalid_request", f"Missing required parameter: {name}")
        access, refresh = sandbox.tokens.exchange_code(key, form["code"], form["redirect_uri"])
    elif grant == "refresh_token":
        if not form.get("refresh_token"):
            raise OAuthError("invalid_request", "Missing required parameter: refresh_token")
        access, refresh = sandbox.tokens.use_refresh_token(key, form["refresh_token"]), None
    else:
        raise OAuthError("unsupported_grant_type", f"Invalid grant_type: {grant}")
    body: JSON = {
        "access_token": access.token,
        "expires_in": ACCESS_TOKEN_LIFETIME,
        "scope": " ".join(access.scopes),
        "token_type": "Bearer",
    }
    if refresh is not None:
        body["refresh_token"] = refresh.token
    return body
