"""The web console over plain HTTP, as a browser would use it: sign in, open a page.

Cookies are sent explicitly, never from the client's jar (cleared before each request), so
a test says which session a request carries."""

from __future__ import annotations

import re

import httpx

from relaybox.web.session import COOKIE, SIGNIN_COOKIE


async def sign_in(http: httpx.AsyncClient, base: str, credential: str) -> httpx.Response:
    """Post the sign-in form (with its CSRF token and cookie); the answer, not followed."""
    http.cookies.clear()
    form = await http.get(f"{base}/ui/signin")
    http.cookies.clear()
    token = re.search(r'name="csrf" value="([^"]+)"', form.text)
    assert token is not None, form.text
    return await http.post(
        f"{base}/ui/signin",
        data={"credential": credential, "csrf": token.group(1)},
        headers={"Cookie": f"{SIGNIN_COOKIE}={form.cookies[SIGNIN_COOKIE]}"},
    )


async def session_cookie(http: httpx.AsyncClient, base: str, credential: str) -> str:
    """Sign in; the session cookie's value (what a thief would copy)."""
    answer = await sign_in(http, base, credential)
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/overview", answer.text
    return answer.cookies[COOKIE]


async def console_opens(http: httpx.AsyncClient, base: str, cookie: str) -> bool:
    """Whether the instances page opens with this session cookie alone (else: sign in)."""
    http.cookies.clear()
    answer = await http.get(f"{base}/ui/", headers={"Cookie": f"{COOKIE}={cookie}"})
    if answer.status_code == 303:
        assert answer.headers["location"] == "/ui/signin"
        return False
    assert answer.status_code == 200 and "<h1>Instances</h1>" in answer.text, answer.text
    return True
