"""`/elements/api-v2/instances/{id}/configuration[/{configId}]`: an instance's configuration
one key at a time, as `{id, key, name, propertyValue}` (SPEC section 9).

A key's id is the same for every instance and release (`core/instance_config.config_id`);
secrets and the app key read back as `********`.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request

from relaybox.api.auth import Caller
from relaybox.api.deps import RowId, json_body
from relaybox.api.instances import one
from relaybox.api.models import (
    ANSWERS,
    AUTHENTICATED,
    ConfigurationItem,
    PropertyValue,
    errors,
    request_body,
)

router = APIRouter(prefix="/elements/api-v2/instances", tags=["instances"], responses=AUTHENTICATED)

ConfigId = Annotated[int, Path(ge=0, le=2**48 - 1)]


@router.get(
    "/{instance_id}/configuration",
    response_model=list[ConfigurationItem],
    **ANSWERS,
    responses=errors(400, 404),
)
async def list_configuration(
    instance_id: RowId, request: Request, principal: Caller
) -> list[dict[str, Any]]:
    service, row = await one(request, principal, instance_id, None)
    return service.configuration(row)


@router.get(
    "/{instance_id}/configuration/{config_id}",
    response_model=ConfigurationItem,
    **ANSWERS,
    responses=errors(400, 404),
)
async def get_configuration(
    instance_id: RowId, config_id: ConfigId, request: Request, principal: Caller
) -> dict[str, Any]:
    service, row = await one(request, principal, instance_id, None)
    return service.configuration_item(row, config_id)


@router.patch(
    "/{instance_id}/configuration/{config_id}",
    response_model=ConfigurationItem,
    **ANSWERS,
    responses=errors(
        400,
        404,
        413,
        e400="Also when `propertyValue` is not a valid value for the key (see "
        "`Configuration`) or `null` for a key relaybox acts on, a `key` is given that is not "
        "this id's, or the change leaves the configuration incomplete, as in `PATCH "
        "/instances/{id}`.",
    ),
    openapi_extra=request_body(PropertyValue),
)
async def patch_configuration(
    instance_id: RowId, config_id: ConfigId, request: Request, principal: Caller
) -> dict[str, Any]:
    """Set one key's `propertyValue` (validated like the same key in `PATCH /instances`;
    events may be enabled before the callback URL is named, and flow once it is)."""
    service, _ = await one(request, principal, instance_id, None)
    body = await json_body(request)
    return await service.set_property(principal.org_id, instance_id, config_id, body)
