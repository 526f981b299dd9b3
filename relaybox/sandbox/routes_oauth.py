"""OAuth 2: the consent page (``/oauth2/authorize``) and ``/oauth2/token``."""

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.templating import Jinja2Templates

from relaybox.sandbox.errors import DropboxHTTPError, json_response
from relaybox.sandbox.rpc import apply_fault
from relaybox.sandbox.state import Sandbox
from relaybox.sandbox.tokens import ACCESS_TOKEN_LIFETIME, SCOPE, GrantError
from relaybox.sandbox_kit.oauth import client_credentials, consenting_account, with_query


def _oauth_error(error: str, description: str, status: int = 400) -> Response:
    return json_response({"error": error, "error_description": description}, status)


def routes(sandbox: Sandbox, templates: Jinja2Templates) -> list[Route]:
    async def authorize_page(request: Request) -> Response:
        params = request.query_params
        context = {
            "client_id": params.get("client_id", ""),
            "redirect_uri": params.get("redirect_uri", ""),
            "state": params.get("state", ""),
            "token_access_type": params.get("token_access_type", ""),
            "selected": params.get("account_id", ""),
            "accounts": list(sandbox.accounts.values()),
            "root": request.scope.get("root_path", ""),
            "error": None,
        }
        app = sandbox.apps.get(context["client_id"])
        if app is None:
            context["error"] = f"Invalid client_id: {context['client_id']!r}"
        elif params.get("response_type", "code") != "code":
            context["error"] = "Only response_type=code is supported"
        status = 400 if context["error"] else 200
        return templates.TemplateResponse(request, "authorize.html", context, status_code=status)

    async def authorize_decision(request: Request) -> Response:
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        app_key, redirect_uri = form.get("client_id", ""), form.get("redirect_uri", "")
        state = form.get("state", "")
        extra = {"state": state} if state else {}
        if app_key not in sandbox.apps:
            return Response("Invalid client_id", 400, media_type="text/plain")
        if form.get("decision") != "allow":
            if not redirect_uri:
                return Response("Access denied.", 200, media_type="text/plain")
            denied = {
                "error": "access_denied",
                "error_description": "The user chose not to give your app access.",
            }
            return RedirectResponse(with_query(redirect_uri, {**denied, **extra}), 302)
        account_id = consenting_account(
            form, "account_id", sandbox.accounts, lambda e: sandbox.create_account(e).account_id
        )
        if account_id is None:
            return Response("Choose an account", 400, media_type="text/plain")
        code = sandbox.authorize(
            app_key, account_id, redirect_uri or None, form.get("token_access_type") or None
        )
        if not redirect_uri:
            return templates.TemplateResponse(request, "code.html", {"code": code})
        return RedirectResponse(with_query(redirect_uri, {"code": code, **extra}), 302)

    async def token(request: Request) -> Response:
        sandbox.webhooks.start()
        try:
            await apply_fault(sandbox, "oauth2/token")
        except DropboxHTTPError as error:
            return error.response()
        form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
        key, secret = client_credentials(request, form)
        app = sandbox.apps.get(key)
        if not key:
            return _oauth_error("invalid_request", "No auth function available for given request")
        if app is None or app.secret != secret:
            return _oauth_error("invalid_client", "Invalid client_id or client_secret")
        grant = form.get("grant_type")
        try:
            if grant == "authorization_code":
                if not form.get("code"):
                    return _oauth_error("invalid_request", "No code given")
                access, refresh = sandbox.tokens.exchange_code(
                    key, form["code"], form.get("redirect_uri") or None
                )
                account = sandbox.account(access.account_id)
                body = {
                    "access_token": access.token,
                    "token_type": "bearer",
                    "expires_in": ACCESS_TOKEN_LIFETIME,
                    "scope": SCOPE,
                    "uid": str(account.uid),
                    "account_id": account.account_id,
                }
                if refresh is not None:
                    body["refresh_token"] = refresh.token
            elif grant == "refresh_token":
                if not form.get("refresh_token"):
                    return _oauth_error("invalid_request", "No refresh_token given")
                access = sandbox.tokens.use_refresh_token(key, form["refresh_token"])
                body = {
                    "access_token": access.token,
                    "token_type": "bearer",
                    "expires_in": ACCESS_TOKEN_LIFETIME,
                }
            else:
                return _oauth_error("unsupported_grant_type", f"grant_type {grant!r}")
        except GrantError as error:
            return _oauth_error(error.error, error.description)
        sandbox.save()
        return json_response(body)

    return [
        Route("/oauth2/authorize", authorize_page, methods=["GET"]),
        Route("/oauth2/authorize", authorize_decision, methods=["POST"]),
        Route("/oauth2/token", token, methods=["POST"]),
    ]
