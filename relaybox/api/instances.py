"""`/elements/api-v2/instances`: create, list, read, update, re-authenticate, enable,
disable, delete; the same under `/elements/{keyOrId}/instances` (SPEC section 9)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request, Response

from relaybox.api.auth import Caller, Principal
from relaybox.api.deps import RowId, json_body, runtime_of
from relaybox.api.errors import ApiError
from relaybox.api.models import (
    ANSWERS,
    AUTHENTICATED,
    ELEMENT_KEYS_AND_IDS,
    ApiKeyElementInstanceCreate,
    ApiKeyInstanceCreate,
    Instance,
    InstanceUpdate,
    OAuth2ElementInstanceCreate,
    OAuth2InstanceCreate,
    errors,
    request_body,
)
from relaybox.core.errors import InvalidInput, NotFound
from relaybox.core.instance_request import MAX_TAG, MAX_TAGS, element_key
from relaybox.services.instances import InstanceService
from relaybox.store import tables
from relaybox.store.db import transaction

router = APIRouter(prefix="/elements/api-v2/instances", tags=["instances"], responses=AUTHENTICATED)
by_element = APIRouter(
    prefix="/elements/api-v2/elements/{element}/instances",
    tags=["instances"],
    responses=AUTHENTICATED,
)
ElementPath = Annotated[
    str,
    Path(
        description="The element's key, or the anchor platform's id for it.",
        json_schema_extra={"enum": ELEMENT_KEYS_AND_IDS},
    ),
]

CREATE_REFUSALS = (
    "Also when the request is well formed but cannot be carried out: the provider (Dropbox, "
    "Google Drive) refuses the code or the access token (the answer has `providerMessage`), "
    "the callback URL's host does not resolve or resolves to a non-public address (unless "
    "private callbacks are allowed), an `element.key` differs from the path's, or "
    "`event.vendor.type` is `longpoll` for a provider that has none (Google Drive)."
)
UPDATE_REFUSALS = (
    "Also when the request is well formed but cannot be carried out: the configuration, "
    "applied to the stored one, lacks what its authentication type requires or names no "
    "callback URL while events are enabled; the provider refuses the code (the answer has "
    "`providerMessage`) or it belongs to another account; `longpoll` is asked of a provider "
    "that has none; `providerData.code` is missing "
    "where re-authenticating an `oauth2` instance needs it; the callback URL's host does "
    "not resolve or resolves to a non-public address."
)
CREATE: dict[str, Any] = {
    "response_model": Instance,
    **ANSWERS,
    "responses": errors(400, 404, 409, 413, e400=CREATE_REFUSALS),
}
UPDATE: dict[str, Any] = {
    "response_model": Instance,
    **ANSWERS,
    "responses": errors(400, 404, 413, e400=UPDATE_REFUSALS),
}
ONE: dict[str, Any] = {"response_model": Instance, **ANSWERS, "responses": errors(400, 404)}
LISTING: dict[str, Any] = {
    "response_model": list[Instance],
    **ANSWERS,
    "responses": errors(400),
    "openapi_extra": {
        "parameters": [
            {
                "name": name,
                "in": "query",
                "required": False,
                "style": "form",
                "explode": True,
                "description": "Instances carrying any of these tags.",
                "schema": {
                    "type": "array",
                    "maxItems": MAX_TAGS,
                    "items": {"type": "string", "maxLength": MAX_TAG},
                },
            }
            for name in ("tags[]", "tags")
        ]
    },
}
ELEMENT_LISTING = {**LISTING, "responses": errors(400, 404)}
DELETED: dict[str, Any] = {
    "response_class": Response,
    "responses": {200: {"description": "Deleted: no body."}, **errors(400, 404)},
}


def own_instance(principal: Principal, instance_id: int) -> None:
    """An instance token reaches its own instance only (others are simply not found)."""
    if principal.instance_id is not None and principal.instance_id != instance_id:
        raise NotFound(f"no instance {instance_id}")


def tags_asked(request: Request) -> list[str]:
    """`?tags[]=a&tags[]=b` (or `%5B%5D`): instances carrying any of them."""
    tags = []
    for name in ("tags[]", "tags"):  # each bounded alone, as the document says
        given = request.query_params.getlist(name)
        if len(given) > MAX_TAGS or any(len(tag) > MAX_TAG for tag in given):
            raise ApiError(400, f"{name}: at most {MAX_TAGS} tags of at most {MAX_TAG} characters")
        tags.extend(given)
    return tags


async def answer_for(service: InstanceService, row: tables.Instance) -> dict[str, Any]:
    async with transaction(service.runtime.sessions) as session:
        return await service.answer(session, row)


async def create(request: Request, principal: Principal, element: str | None) -> dict[str, Any]:
    if principal.instance_id is not None:
        raise NotFound("instance tokens cannot create instances")
    body = await json_body(request)
    if element is not None and isinstance(body, dict):
        given = body.setdefault("element", {"key": element})
        if not isinstance(given, dict) or given.get("key", element) != element:
            raise InvalidInput(f"element.key must be {element!r} here", field="element.key")
        given.setdefault("key", element)
    service = InstanceService(runtime_of(request))
    row = await service.create(principal.org_id, body, user_id=principal.user_id)
    return await answer_for(service, row)


async def listing(request: Request, principal: Principal, element: str | None) -> list[Any]:
    service = InstanceService(runtime_of(request))
    async with transaction(service.runtime.sessions) as session:
        rows = [
            row
            for row in await service.all(session, principal.org_id, tags_asked(request))
            if principal.instance_id in (None, row.id) and element in (None, row.element_key)
        ]
        return await service.answers(session, rows)


async def one(
    request: Request, principal: Principal, instance_id: int, element: str | None
) -> tuple[InstanceService, tables.Instance]:
    own_instance(principal, instance_id)
    service = InstanceService(runtime_of(request))
    async with transaction(service.runtime.sessions) as session:
        row = await service.get(session, principal.org_id, instance_id)
    if element not in (None, row.element_key):
        raise NotFound(f"no {element} instance {instance_id}")
    return service, row


async def update(
    request: Request, principal: Principal, instance_id: int, element: str | None, *, put: bool
) -> dict[str, Any]:
    """PATCH (partial update) and PUT (re-authenticate: `providerData.code` required for
    oauth2); either re-provisions when it carries `providerData.code`."""
    service, _ = await one(request, principal, instance_id, element)
    body = await json_body(request)
    row = await service.update(principal.org_id, instance_id, body, reauth=put)
    return await answer_for(service, row)


async def remove(
    request: Request, principal: Principal, instance_id: int, element: str | None
) -> Response:
    """Revoke the Dropbox token, stop events, erase the instance and its secrets."""
    service, _ = await one(request, principal, instance_id, element)
    await service.delete(principal.org_id, instance_id)
    return Response(status_code=200)


@router.post(
    "",
    status_code=200,
    **CREATE,
    openapi_extra=request_body(OAuth2InstanceCreate, ApiKeyInstanceCreate),
)
async def create_instance(request: Request, principal: Caller) -> dict[str, Any]:
    """Create an instance: exchange the OAuth code, read the account, index it."""
    return await create(request, principal, None)


@router.get("", **LISTING)
async def list_instances(request: Request, principal: Caller) -> list[Any]:
    return await listing(request, principal, None)


@router.get("/{instance_id}", **ONE)
async def get_instance(instance_id: RowId, request: Request, principal: Caller) -> dict[str, Any]:
    service, row = await one(request, principal, instance_id, None)
    return await answer_for(service, row)


@router.patch("/{instance_id}", **UPDATE, openapi_extra=request_body(InstanceUpdate))
async def patch_instance(instance_id: RowId, request: Request, principal: Caller) -> dict[str, Any]:
    return await update(request, principal, instance_id, None, put=False)


@router.put("/{instance_id}", **UPDATE, openapi_extra=request_body(InstanceUpdate))
async def put_instance(instance_id: RowId, request: Request, principal: Caller) -> dict[str, Any]:
    return await update(request, principal, instance_id, None, put=True)


@router.delete("/{instance_id}", status_code=200, **DELETED)
async def delete_instance(instance_id: RowId, request: Request, principal: Caller) -> Response:
    return await remove(request, principal, instance_id, None)


@router.put("/{instance_id}/enabled", **ONE)
async def enable_instance(instance_id: RowId, request: Request, principal: Caller) -> Any:
    """Enable: passes and deliveries resume (the anchor's `PUT /instances/{id}/enabled`)."""
    return await set_enabled(request, principal, instance_id, True)


@router.delete("/{instance_id}/enabled", **ONE)
async def disable_instance(instance_id: RowId, request: Request, principal: Caller) -> Any:
    """Disable: no passes, no deliveries until enabled again; the answer is the instance."""
    return await set_enabled(request, principal, instance_id, False)


async def set_enabled(
    request: Request, principal: Principal, instance_id: int, enabled: bool
) -> dict[str, Any]:
    service, _ = await one(request, principal, instance_id, None)
    row = await service.set_enabled(principal.org_id, instance_id, enabled)
    return await answer_for(service, row)


@by_element.post(
    "",
    status_code=200,
    **CREATE,
    openapi_extra=request_body(OAuth2ElementInstanceCreate, ApiKeyElementInstanceCreate),
)
async def create_element_instance(
    element: ElementPath, request: Request, principal: Caller
) -> dict[str, Any]:
    return await create(request, principal, element_key(element))


@by_element.get("", **ELEMENT_LISTING)
async def list_element_instances(
    element: ElementPath, request: Request, principal: Caller
) -> list[Any]:
    return await listing(request, principal, element_key(element))


@by_element.get("/{instance_id}", **ONE)
async def get_element_instance(
    element: ElementPath, instance_id: RowId, request: Request, principal: Caller
) -> dict[str, Any]:
    service, row = await one(request, principal, instance_id, element_key(element))
    return await answer_for(service, row)


@by_element.patch("/{instance_id}", **UPDATE, openapi_extra=request_body(InstanceUpdate))
async def patch_element_instance(
    element: ElementPath, instance_id: RowId, request: Request, principal: Caller
) -> dict[str, Any]:
    return await update(request, principal, instance_id, element_key(element), put=False)


@by_element.put("/{instance_id}", **UPDATE, openapi_extra=request_body(InstanceUpdate))
async def put_element_instance(
    element: ElementPath, instance_id: RowId, request: Request, principal: Caller
) -> dict[str, Any]:
    return await update(request, principal, instance_id, element_key(element), put=True)


@by_element.delete("/{instance_id}", status_code=200, **DELETED)
async def delete_element_instance(
    element: ElementPath, instance_id: RowId, request: Request, principal: Caller
) -> Response:
    return await remove(request, principal, instance_id, element_key(element))
