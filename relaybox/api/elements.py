"""`/elements/api-v2/elements/{key}/oauth/url`: where to send a user to connect an account.

It answers without credentials, as the anchor documents it (SPEC section 9): the URL is
built from the query alone and reveals nothing of any organization, so an Authorization
header, when sent, is not read.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from relaybox.api.deps import runtime_of
from relaybox.api.errors import ApiError
from relaybox.api.models import ANSWERS, ELEMENT_KEYS, OAuthUrl, errors
from relaybox.services.instances import ELEMENTS

router = APIRouter(prefix="/elements/api-v2/elements", tags=["elements"])


@router.get(
    "/{element_key}/oauth/url",
    response_model=OAuthUrl,
    **ANSWERS,
    responses=errors(400, 404, 500),
)
async def oauth_url(
    element_key: Annotated[str, Path(json_schema_extra={"enum": ELEMENT_KEYS})],
    request: Request,
    api_key: str = Query(alias="apiKey", min_length=1, max_length=512),
    api_secret: str | None = Query(default=None, alias="apiSecret", max_length=512),
    callback_url: str | None = Query(default=None, alias="callbackUrl", max_length=2048),
    state: str | None = Query(default=None, max_length=2048),
) -> dict[str, Any]:
    if element_key not in ELEMENTS:
        raise ApiError(404, f"no element {element_key!r}")
    connector = runtime_of(request).connector(element_key)
    url = connector.authorize_url(app_key=api_key, redirect_uri=callback_url, state=state)
    return {"element": element_key, "oauthUrl": url}
