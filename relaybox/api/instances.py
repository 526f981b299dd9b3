"""`/elements/api-v2/instances`: create, list, read, update, re-authenticate, delete."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response

from relaybox.api.auth import Caller, Principal
from relaybox.api.deps import RowId, json_body, runtime_of
from relaybox.core.errors import NotFound
from relaybox.services.instances import InstanceService
from relaybox.store.db import transaction

router = APIRouter(prefix="/elements/api-v2/instances", tags=["instances"])


def own_instance(principal: Principal, instance_id: int) -> None:
    """An instance token reaches its own instance only (others are simply not found)."""
    if principal.instance_id is not None and principal.instance_id != instance_id:
        raise NotFound(f"no instance {instance_id}")


@router.post("", status_code=200)
async def create_instance(request: Request, principal: Caller) -> dict[str, Any]:
    """Create an instance: exchange the OAuth code, read the account, index it."""
    if principal.instance_id is not None:
        raise NotFound("instance tokens cannot create instances")
    service = InstanceService(runtime_of(request))
    row = await service.create(principal.org_id, await json_body(request))
    return service.describe(row)


@router.get("")
async def list_instances(request: Request, principal: Caller) -> list[dict[str, Any]]:
    service = InstanceService(runtime_of(request))
    async with transaction(service.runtime.sessions) as session:
        rows = await service.all(session, principal.org_id)
        return [service.describe(row) for row in rows if principal.instance_id in (None, row.id)]


@router.get("/{instance_id}")
async def get_instance(instance_id: RowId, request: Request, principal: Caller) -> dict[str, Any]:
    own_instance(principal, instance_id)
    service = InstanceService(runtime_of(request))
    async with transaction(service.runtime.sessions) as session:
        return service.describe(await service.get(session, principal.org_id, instance_id))


@router.patch("/{instance_id}")
async def patch_instance(instance_id: RowId, request: Request, principal: Caller) -> dict[str, Any]:
    """Partial update of name, tags and configuration."""
    own_instance(principal, instance_id)
    service = InstanceService(runtime_of(request))
    body = await json_body(request)
    row = await service.update(principal.org_id, instance_id, body, reauth=False)
    return service.describe(row)


@router.put("/{instance_id}")
async def reauthenticate_instance(
    instance_id: RowId, request: Request, principal: Caller
) -> dict[str, Any]:
    """Re-authenticate with a new `providerData.code` (and optionally new configuration)."""
    own_instance(principal, instance_id)
    service = InstanceService(runtime_of(request))
    body = await json_body(request)
    row = await service.update(principal.org_id, instance_id, body, reauth=True)
    return service.describe(row)


@router.delete("/{instance_id}", status_code=200)
async def delete_instance(instance_id: RowId, request: Request, principal: Caller) -> Response:
    """Revoke the Dropbox token, stop events, erase the instance and its secrets."""
    own_instance(principal, instance_id)
    await InstanceService(runtime_of(request)).delete(principal.org_id, instance_id)
    return Response(status_code=200)
