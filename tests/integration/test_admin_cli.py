"""`relaybox admin ...` end to end: create an organization and a user from the command line,
then call the API with the printed credentials; list-orgs and rotate-key on the same data."""

from __future__ import annotations

import asyncio
import os
import re
import sys
from pathlib import Path

import httpx

from relaybox.app import create_app
from relaybox.config import Settings
from relaybox.crypto import KEY_FILE, parse_keys
from tests.support.servers import serving


async def admin(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "relaybox",
        "admin",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    return process.returncode or 0, out.decode(), err.decode()


async def test_created_organizations_and_users_can_call_the_api(
    tmp_path: Path, database_url: str
) -> None:
    data_dir = tmp_path / "data"
    env = {
        **os.environ,
        "RELAYBOX_DATA_DIR": str(data_dir),
        "RELAYBOX_DATABASE_URL": database_url,
    }
    env.pop("RELAYBOX_SECRET_KEY", None)
    code, out, _ = await admin(env, "create-org", "Acme Corp", "--email", "ops@acme.example")
    assert code == 0, out
    org_id = int(re.search(r"^organization (\d+)$", out, re.M).group(1))  # type: ignore[union-attr]
    found = re.search(r"^Authorization: (User (\S+), Organization (\S+))$", out, re.M)
    assert found is not None, out
    header, first_user, org_secret = found.groups()

    code, out, _ = await admin(env, "create-user", str(org_id), "dev@acme.example")
    assert code == 0
    second = re.search(r"^User (\S+)$", out, re.M)
    assert second is not None, out
    second_user = second.group(1)
    assert len({first_user, second_user, org_secret}) == 3

    code, _, err = await admin(env, "create-user", "999999", "x@acme.example")
    assert code == 1 and "no organization 999999" in err

    code, out, _ = await admin(env, "list-orgs")
    assert code == 0
    assert f"{org_id}\tAcme Corp\tusers=2\tinstances=0" in out.splitlines()
    assert first_user not in out and org_secret not in out

    settings = Settings(data_dir=data_dir, database_url=database_url)
    async with (
        serving(create_app(settings, workers=False)) as base,
        httpx.AsyncClient(base_url=f"{base}/elements/api-v2", timeout=10) as http,
    ):
        for user in (first_user, second_user):
            auth = {"Authorization": f"User {user}, Organization {org_secret}"}
            answer = await http.get("/instances", headers=auth)
            assert answer.status_code == 200 and answer.json() == []
        assert (await http.get("/instances", headers={"Authorization": header})).status_code == 200
        wrong = {"Authorization": f"User {second_user}, Organization nope"}
        assert (await http.get("/instances", headers=wrong)).status_code == 401

        # rotate-key on the key file of a running server: it prints the new key, keeps
        # the old one after it until --retire-old, and the server keeps answering.
        (old,) = parse_keys((data_dir / KEY_FILE).read_text())
        code, out, _ = await admin(env, "rotate-key")
        assert code == 0, out
        new = re.search(r"^new key: (\S+)$", out, re.M)
        assert new is not None, out
        assert parse_keys((data_dir / KEY_FILE).read_text()) == [new.group(1), old]
        code, out, _ = await admin(env, "rotate-key", "--retire-old")
        assert code == 0 and "old keys retired" in out
        assert parse_keys((data_dir / KEY_FILE).read_text()) == [new.group(1)]
        auth = {"Authorization": f"User {first_user}, Organization {org_secret}"}
        assert (await http.get("/instances", headers=auth)).status_code == 200
