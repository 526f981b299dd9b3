"""OAuth 2 codes, access tokens and refresh tokens."""

import time
from dataclasses import dataclass

from relaybox.sandbox import ids
from relaybox.sandbox_kit.tokens import TokenTables

ACCESS_TOKEN_LIFETIME = 14400
SCOPE = (
    "account_info.read files.content.read files.content.write "
    "files.metadata.read files.metadata.write"
)


class GrantError(Exception):
    """An OAuth error answered by ``/oauth2/token`` (``invalid_grant``...)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description)
        self.error = error
        self.description = description


class TokenRejected(Exception):
    """An access token Dropbox would refuse; ``tag`` is the ``AuthError`` tag."""

    def __init__(self, tag: str) -> None:
        super().__init__(tag)
        self.tag = tag


@dataclass
class AuthCode:
    code: str
    app_key: str
    account_id: str
    redirect_uri: str | None
    token_access_type: str | None
    used: bool = False


@dataclass
class AccessToken:
    token: str
    app_key: str
    account_id: str
    expires_at: float
    refresh_token: str | None = None
    revoked: bool = False


@dataclass
class RefreshToken:
    token: str
    app_key: str
    account_id: str
    revoked: bool = False


class TokenStore(TokenTables[AuthCode, AccessToken, RefreshToken]):
    def __init__(self) -> None:
        super().__init__(time.time, "account_id", AuthCode, AccessToken, RefreshToken)

    def issue_code(
        self,
        app_key: str,
        account_id: str,
        redirect_uri: str | None,
        token_access_type: str | None,
    ) -> str:
        code = AuthCode(ids.new_code(), app_key, account_id, redirect_uri, token_access_type)
        self.codes[code.code] = code
        return code.code

    def _new_access(self, app_key: str, account_id: str, refresh: str | None) -> AccessToken:
        token = AccessToken(
            ids.new_access_token(),
            app_key,
            account_id,
            self.now() + ACCESS_TOKEN_LIFETIME,
            refresh,
        )
        self.access[token.token] = token
        return token

    def exchange_code(
        self, app_key: str, code: str, redirect_uri: str | None
    ) -> tuple[AccessToken, RefreshToken | None]:
        found = self.codes.get(code)
        if found is None or found.app_key != app_key:
            raise GrantError("invalid_grant", "code doesn't exist or has expired")
        if found.used:
            raise GrantError("invalid_grant", "code has already been used")
        if (found.redirect_uri or None) != (redirect_uri or None):
            raise GrantError("invalid_grant", "redirect_uri mismatch")
        found.used = True
        refresh = None
        if found.token_access_type == "offline":  # noqa: S105 - not a password
            refresh = RefreshToken(ids.new_refresh_token(), app_key, found.account_id)
            self.refresh[refresh.token] = refresh
        access = self._new_access(app_key, found.account_id, refresh.token if refresh else None)
        return access, refresh

    def use_refresh_token(self, app_key: str, token: str) -> AccessToken:
        found = self.refresh.get(token)
        if found is None or found.revoked or found.app_key != app_key:
            raise GrantError("invalid_grant", "refresh token is invalid or revoked")
        return self._new_access(app_key, found.account_id, found.token)

    def check(self, token: str) -> AccessToken:
        found = self.access.get(token)
        if found is None or found.revoked:
            raise TokenRejected("invalid_access_token")
        if found.expires_at <= self.now():
            raise TokenRejected("expired_access_token")
        return found

    def revoke(self, token: AccessToken) -> None:
        """Revoke ``token``, its refresh token and every token from that refresh token."""
        token.revoked = True
        if token.refresh_token is None:
            return
        self.refresh[token.refresh_token].revoked = True
        for other in self.access.values():
            if other.refresh_token == token.refresh_token:
                other.revoked = True
