"""Google OAuth 2.0: authorization codes, access tokens that expire, refresh tokens, grants.

Google gives a refresh token only for ``access_type=offline``, and then only on the first
consent of a user to a client, or when the consent page was shown again
(``prompt=consent``): a client that signs the same user in again without it gets an
access token alone. Revoking any token of a grant revokes the grant: its refresh token
and every access token made from it.
"""

from collections.abc import Callable
from dataclasses import dataclass, field

from relaybox.gdrive_sandbox import ids
from relaybox.gdrive_sandbox.errors import OAuthError
from relaybox.sandbox_kit.tokens import TokenTables

ACCESS_TOKEN_LIFETIME = 3599
CODE_LIFETIME = 600
DRIVE = "https://www.googleapis.com/auth/drive"
READ_SCOPES = frozenset(
    {
        DRIVE,
        f"{DRIVE}.readonly",
        f"{DRIVE}.metadata",
        f"{DRIVE}.metadata.readonly",
        f"{DRIVE}.file",
        f"{DRIVE}.appdata",
    }
)
"""Scopes that may read metadata and changes (``drive.file``: of the app's own files, which
the sandbox does not tell apart)."""
WRITE_SCOPES = frozenset({DRIVE, f"{DRIVE}.file"})
IDENTITY_SCOPES = frozenset(
    {
        "openid",
        "email",
        "profile",
        "https://www.googleapis.com/auth/userinfo.email",
        "https://www.googleapis.com/auth/userinfo.profile",
    }
)
KNOWN_SCOPES = READ_SCOPES | IDENTITY_SCOPES


@dataclass
class AuthCode:
    code: str
    client_id: str
    permission_id: str
    redirect_uri: str
    scopes: list[str]
    expires_at: float
    with_refresh: bool
    used: bool = False


@dataclass
class AccessToken:
    token: str
    client_id: str
    permission_id: str
    scopes: list[str]
    expires_at: float
    refresh_token: str | None = None
    revoked: bool = False


@dataclass
class RefreshToken:
    token: str
    client_id: str
    permission_id: str
    scopes: list[str] = field(default_factory=list)
    revoked: bool = False


class TokenRejected(Exception):
    """An access token Google would refuse (unknown, expired or revoked)."""


class TokenStore(TokenTables[AuthCode, AccessToken, RefreshToken]):
    def __init__(self, now: Callable[[], float]) -> None:
        super().__init__(now, "permission_id", AuthCode, AccessToken, RefreshToken)

    def _has_grant(self, client_id: str, permission_id: str) -> bool:
        return any(
            r.client_id == client_id and r.permission_id == permission_id and not r.revoked
            for r in self.refresh.values()
        )

    def issue_code(
        self,
        client_id: str,
        permission_id: str,
        redirect_uri: str,
        scopes: list[str],
        *,
        offline: bool,
        consent_shown: bool,
    ) -> str:
        with_refresh = offline and (consent_shown or not self._has_grant(client_id, permission_id))
        code = AuthCode(
            ids.new_code(),
            client_id,
            permission_id,
            redirect_uri,
            scopes,
            self.now() + CODE_LIFETIME,
            with_refresh,
        )
        self.codes[code.code] = code
        return code.code

    def _new_access(
        self, client_id: str, permission_id: str, scopes: list[str], refresh: str | None
    ) -> AccessToken:
        token = AccessToken(
            ids.new_access_token(),
            client_id,
            permission_id,
            scopes,
            self.now() + ACCESS_TOKEN_LIFETIME,
            refresh,
        )
        self.access[token.token] = token
        return token

    def exchange_code(
        self, client_id: str, code: str, redirect_uri: str
    ) -> tuple[AccessToken, RefreshToken | None]:
        found = self.codes.get(code)
        if found is None or found.client_id != client_id:
            raise OAuthError("invalid_grant", "Malformed auth code.")
        if found.used or found.expires_at <= self.now():
            raise OAuthError("invalid_grant", "Bad Request")
        if found.redirect_uri != redirect_uri:
            raise OAuthError("redirect_uri_mismatch", "Bad Request")
        found.used = True
        refresh = None
        if found.with_refresh:
            refresh = RefreshToken(
                ids.new_refresh_token(), client_id, found.permission_id, list(found.scopes)
            )
            self.refresh[refresh.token] = refresh
        access = self._new_access(
            client_id, found.permission_id, found.scopes, refresh.token if refresh else None
        )
        return access, refresh

    def use_refresh_token(self, client_id: str, token: str) -> AccessToken:
        found = self.refresh.get(token)
        if found is None or found.revoked:
            raise OAuthError("invalid_grant", "Token has been expired or revoked.")
        if found.client_id != client_id:
            raise OAuthError("unauthorized_client", "Unauthorized")
        return self._new_access(client_id, found.permission_id, found.scopes, found.token)

    def check(self, token: str) -> AccessToken:
        found = self.access.get(token)
        if found is None or found.revoked or found.expires_at <= self.now():
            raise TokenRejected(token)
        return found

    def revoke(self, token: str) -> None:
        """Revoke the grant ``token`` (access or refresh) belongs to, or OAuthError."""
        access = self.access.get(token)
        refresh = self.refresh.get(token)
        if access is not None and access.refresh_token is not None:
            refresh = self.refresh.get(access.refresh_token)
        live_access = access is not None and not access.revoked and access.expires_at > self.now()
        if not live_access and (refresh is None or refresh.revoked):
            raise OAuthError("invalid_token", "Token expired or revoked")
        if access is not None:
            access.revoked = True
        if refresh is not None:
            refresh.revoked = True
            for other in self.access.values():
                if other.refresh_token == refresh.token:
                    other.revoked = True
