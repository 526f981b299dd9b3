"""HTTPS callbacks: every host name a connection carries is verified by TLS, even when
several tenants' hosts share one address and one kept-alive connection pool."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import trustme

from tests.support.dns import fake_dns
from tests.support.servers import CallbackReceiver, eventually, serving
from tests.support.stack import Stack, running_stack


async def _first_attempt(stack: Stack, instance_id: int) -> dict[str, Any] | None:
    listed = await stack.deliveries(instance_id)
    return listed[0] if listed and listed[0]["attempts"] else None


async def test_a_host_sharing_an_address_is_verified_not_carried_on_another_hosts_connection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One HTTPS endpoint whose certificate covers tenant-a.example only; both tenants'
    # names resolve to its address.
    ca = trustme.CA()
    ca_bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_bundle))
    certificate = tmp_path / "tenant-a.pem"
    ca.issue_cert("tenant-a.example").private_key_and_cert_chain_pem.write_to_path(str(certificate))
    fake_dns(
        monkeypatch,
        {"tenant-a.example": ["127.0.0.1"], "tenant-b.example": ["127.0.0.1"]},
        public=True,
    )
    endpoint = CallbackReceiver()
    database = f"sqlite+aiosqlite:///{tmp_path / 'tls.db'}"
    async with (
        serving(endpoint.app(), ssl_certfile=str(certificate), ssl_keyfile=str(certificate)) as url,
        running_stack(
            tmp_path,
            database,
            allow_private_callbacks=False,
            callback_ca_bundle=ca_bundle,
            # One callback client for every instance: both tenants share its pool.
            delivery_concurrency=8,
            retry_schedule="60",
        ) as stack,
    ):
        port = url.rsplit(":", 1)[1]
        account_a = await stack.new_account("a@example.com")
        account_b = await stack.new_account("b@example.com")
        tenant_a = await stack.connect(
            account_a,
            "tenant a",
            **{"event.notification.callback.url": f"https://tenant-a.example:{port}/events"},
        )
        tenant_b = await stack.connect(
            account_b,
            "tenant b",
            **{"event.notification.callback.url": f"https://tenant-b.example:{port}/events"},
        )

        await stack.upload(account_a, "/a.txt", b"a")
        first = await eventually(lambda: _first_attempt(stack, tenant_a["id"]))
        assert first["status"] == "delivered", first
        # tenant-a's connection is kept alive; tenant-b's delivery must not ride on it.

        await stack.upload(account_b, "/b.txt", b"b")
        refused = await eventually(lambda: _first_attempt(stack, tenant_b["id"]))
        assert refused["status"] == "pending"
        attempt = refused["attempts"][0]
        assert attempt["statusCode"] is None
        assert "certificate verify failed" in attempt["error"]
        assert "tenant-b.example" in attempt["error"]
        assert [item.headers["host"] for item in endpoint.received] == [f"tenant-a.example:{port}"]
