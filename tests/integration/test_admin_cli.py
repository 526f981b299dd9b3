"""`relaybox admin ...` end to end: create an organization and a user from the command line,
then call the API with the printed credentials; list-orgs and rotate-key on the same data."""

from __future__ import annotations

import os
import re
from pathlib import Path

import httpx

from relaybox.app import create_app
from relaybox.config import Settings
from relaybox.crypto import KEY_FILE, parse_keys
from tests.support.console import console_opens, session_cookie, sign_in
from tests.support.processes import run_command
from tests.support.servers import serving


async def admin(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    return await run_command(env, "admin", *args)


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


async def test_revoked_and_rotated_credentials_are_refused(
    tmp_path: Path, database_url: str
) -> None:
    env = {
        **os.environ,
        "RELAYBOX_DATA_DIR": str(tmp_path / "data"),
        "RELAYBOX_DATABASE_URL": database_url,
    }
    env.pop("RELAYBOX_SECRET_KEY", None)
    code, out, _ = await admin(env, "create-org", "Acme Corp", "--email", "ops@acme.example")
    assert code == 0, out
    org_id = re.search(r"^organization (\d+)$", out, re.M).group(1)  # type: ignore[union-attr]
    ada, org = re.search(r"^Authorization: User (\S+), Organization (\S+)$", out, re.M).groups()  # type: ignore[union-attr]
    code, out, _ = await admin(env, "create-user", org_id, "bo@acme.example")
    bo = re.search(r"^User (\S+)$", out, re.M).group(1)  # type: ignore[union-attr]
    code, out, _ = await admin(env, "list-users", org_id)
    assert code == 0 and ada not in out and bo not in out
    ids = {
        email: user_id for user_id, email, _ in (line.split("\t") for line in out.split("\n")[:-1])
    }
    assert set(ids) == {"ops@acme.example", "bo@acme.example"}

    settings = Settings(data_dir=tmp_path / "data", database_url=database_url)
    async with (
        serving(create_app(settings, workers=False)) as base,
        httpx.AsyncClient(timeout=10) as http,
    ):

        async def api(user: str, org_secret: str) -> int:
            auth = {"Authorization": f"User {user}, Organization {org_secret}"}
            answer = await http.get(f"{base}/elements/api-v2/instances", headers=auth)
            return answer.status_code

        ada_console = await session_cookie(http, base, f"User {ada}, Organization {org}")
        bo_console = await session_cookie(http, base, f"User {bo}, Organization {org}")
        assert await api(ada, org) == 200 and await api(bo, org) == 200

        # A rotated user secret: the new one works; the old one and its sessions do not.
        code, out, _ = await admin(env, "rotate-user-secret", ids["ops@acme.example"])
        assert code == 0, out
        new_ada = re.search(r"^User (\S+)$", out, re.M).group(1)  # type: ignore[union-attr]
        assert "1 console sessions ended" in out
        assert await api(new_ada, org) == 200
        assert await api(ada, org) == 401
        assert not await console_opens(http, base, ada_console)
        assert await console_opens(http, base, bo_console)  # another user's session lives on
        assert (await sign_in(http, base, f"User {ada}, Organization {org}")).status_code == 401

        # A revoked user: neither the API nor the console session answers them.
        code, out, _ = await admin(env, "revoke-user", ids["bo@acme.example"])
        assert code == 0 and "1 console sessions ended" in out, out
        assert await api(bo, org) == 401
        assert not await console_opens(http, base, bo_console)
        code, out, _ = await admin(env, "list-users", org_id)
        assert "bo@acme.example" not in out and "ops@acme.example" in out

        # A rotated organization secret: every session made with the old one ends.
        ada_console = await session_cookie(http, base, f"User {new_ada}, Organization {org}")
        code, out, _ = await admin(env, "rotate-org-secret", org_id)
        assert code == 0, out
        new_org = re.search(r"^Organization (\S+)$", out, re.M).group(1)  # type: ignore[union-attr]
        assert await api(new_ada, new_org) == 200
        assert await api(new_ada, org) == 401
        assert not await console_opens(http, base, ada_console)
        assert await console_opens(
            http, base, await session_cookie(http, base, f"User {new_ada}, Organization {new_org}")
        )

    for command in ("revoke-user", "rotate-user-secret"):
        code, _, err = await admin(env, command, "999999")
        assert code == 1 and "no user 999999" in err
    code, _, err = await admin(env, "rotate-org-secret", "999999")
    assert code == 1 and "no organization 999999" in err
