"""The `relaybox` command line: serve, worker, sandbox, db, admin."""

from __future__ import annotations

import asyncio
import enum
import gc
import hashlib
import hmac
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from relaybox import logs
from relaybox.config import Settings
from relaybox.crypto import load_or_create_key
from relaybox.server import run as run_server

if TYPE_CHECKING:
    from relaybox.runtime import Runtime
    from relaybox.sandbox_serving import Exposure

T = TypeVar("T")

app = typer.Typer(help="relaybox: self-hosted connector events.", no_args_is_help=True)
db_app = typer.Typer(help="Database maintenance.", no_args_is_help=True)
admin_app = typer.Typer(help="Organizations and users.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(admin_app, name="admin")


@app.callback()
def _configuration() -> None:
    """Refuse a bad configuration before any command runs, naming each variable and never
    echoing its value (a refused bootstrap secret, say), then exit 2."""
    from pydantic import ValidationError

    try:
        Settings()
    except ValidationError as exc:
        typer.echo("relaybox: configuration refused:", err=True)
        for error in exc.errors():
            name = "RELAYBOX_" + "_".join(str(part) for part in error["loc"]).upper()
            message = str(error["msg"]).removeprefix("Value error, ")
            typer.echo(f"  {name}: {message}" if error["loc"] else f"  {message}", err=True)
        raise typer.Exit(2) from None


Host = Annotated[str, typer.Option(help="Address to listen on.")]
Port = Annotated[int, typer.Option(help="Port to listen on.")]

SANDBOX_APP_KEY = "relaybox-sandbox-app"
GDRIVE_CLIENT_ID = "relaybox-sandbox-app.apps.googleusercontent.com"
SANDBOX_EMAIL = "demo@example.com"


def _logging() -> None:
    logs.configure()


def settle_heap() -> None:
    """Once started: what start-up allocated (modules, table metadata, routes) lives as long
    as the process, so it is frozen out of the cyclic garbage collector, which otherwise
    walks all of it on every full collection (13 % of the receiver's CPU under load)."""
    gc.collect()
    gc.freeze()


@app.command()
def serve(
    host: Host = "127.0.0.1",
    port: Port = 8000,
    sandbox: Annotated[bool, typer.Option(help="Mount the Dropbox sandbox and use it.")] = False,
    sandbox_public: Annotated[
        bool,
        typer.Option(help="Allow --sandbox beyond loopback; its control API then needs a token."),
    ] = False,
    workers: Annotated[bool, typer.Option(help="Run the background workers here.")] = True,
) -> None:
    """Run the API, the receiver and (unless --no-workers) the workers in one process."""
    _logging()
    settings = Settings()
    if "public_url" not in settings.model_fields_set:  # RELAYBOX_PUBLIC_URL unset
        settings = settings.model_copy(update={"public_url": local_url(host, port)})
    mounts: dict[str, Any] = {}
    on_ready = on_stop = None
    on_shutdown: list[Callable[[], None]] = []
    if sandbox:
        settings, mounts, on_ready, on_stop, stop_waiting = _with_sandbox(
            settings, host, sandbox_public
        )
        on_shutdown.append(stop_waiting)
    from relaybox.app import create_app

    async def ready(server: Any) -> None:
        if on_ready is not None:
            await on_ready(server)
        public = settings.public_url.rstrip("/")
        typer.echo(f"relaybox: console {public}/ui/   API reference {public}/docs")
        settle_heap()

    server_app = create_app(
        settings, workers=workers, mounts=mounts, on_ready=ready, on_stop=on_stop
    )
    on_shutdown.append(server_app.state.live.stop)  # consoles' live streams end at once
    run_server(
        server_app,
        on_shutdown=on_shutdown,
        host=host,
        port=port,
        log_level="info",
        log_config=logs.UVICORN_LOGGING,
        **forwarding(settings),
    )


def local_url(host: str, port: int) -> str:
    """The URL of `serve --host host --port port` from this machine (the default public URL:
    the sandbox's links and the OAuth redirects must name the port actually served)."""
    name = host.strip().strip("[]")
    if name in ("", "0.0.0.0"):
        name = "127.0.0.1"
    elif name == "::":
        name = "::1"
    return f"http://[{name}]:{port}" if ":" in name else f"http://{name}:{port}"


def forwarding(settings: Settings) -> dict[str, Any]:
    """uvicorn's proxy options: X-Forwarded-* are read only from RELAYBOX_FORWARDED_ALLOW_IPS
    (uvicorn's own default believes them from loopback, so anyone could choose the address
    the failed-authentication limiter counts; docs/configuration.md)."""
    trusted = settings.forwarded_allow_ips.strip()
    return {"proxy_headers": bool(trusted), "forwarded_allow_ips": trusted or None}


def sandbox_app_secret(settings: Settings) -> str:
    """The demo app's secret: derived from this installation's key, so stable and private."""
    key = load_or_create_key(settings.secret_key, settings.data_dir)
    return hmac.new(key.encode(), b"sandbox app secret", hashlib.sha256).hexdigest()[:32]


def _with_sandbox(
    settings: Settings, host: str, public: bool
) -> tuple[Settings, dict[str, Any], Any, Any, Callable[[], None]]:
    """Point every Dropbox and Google URL at the mounted sandboxes (Google Drive's under
    `/sandbox/gdrive`) and seed their apps and account; the last item ends the Dropbox
    longpolls when the server begins to shut down (relaybox/server.py)."""
    from relaybox import sandbox_serving as serving
    from relaybox.gdrive_sandbox.app import create_app as create_gdrive
    from relaybox.sandbox.app import create_app as create_sandbox

    exposed = _sandbox_exposure(
        host, public, settings, "--sandbox-public", [serving.url_host(settings.public_url)]
    )
    base = settings.public_url.rstrip("/") + "/sandbox"
    settings = settings.model_copy(
        update={
            "dropbox_api_url": base,
            "dropbox_content_url": base,
            "dropbox_notify_url": base,
            "dropbox_www_url": base,
            "googledrive_api_url": base + serving.GDRIVE,
            "googledrive_oauth_url": base + serving.GDRIVE,
            "googledrive_accounts_url": base + serving.GDRIVE,
            "allow_private_callbacks": serving.allow_private_callbacks(settings, exposed),
        }
    )
    state_file = settings.data_dir / "sandbox.json"
    sandbox_app = create_sandbox(state_file=state_file, access=exposed.access)
    gdrive_app = create_gdrive(state_file=serving.gdrive_state_file(state_file))
    app_secret = sandbox_app_secret(settings)

    async def on_ready(_: Any) -> None:
        sandbox, gdrive = sandbox_app.state.sandbox, gdrive_app.state.sandbox
        sandbox.start()
        gdrive.start()
        sandbox.register_app(SANDBOX_APP_KEY, app_secret, settings.dropbox_webhook_uri)
        account = sandbox.create_account(SANDBOX_EMAIL, "Demo User")
        gdrive.register_app(GDRIVE_CLIENT_ID, app_secret, name="relaybox")
        gdrive.create_account(SANDBOX_EMAIL, "Demo User")
        typer.echo(
            "\nDropbox sandbox mounted at "
            f"{base}\n  app key:    {SANDBOX_APP_KEY}\n  app secret: {app_secret}\n"
            f"  account:    {account.account_id} ({SANDBOX_EMAIL})\n"
            + (serving.token_lines(exposed, base) or f"  files page: {base}/_sandbox/ui\n")
            + serving.gdrive_lines(exposed, base + serving.GDRIVE)
            + f"    client id: {GDRIVE_CLIENT_ID} (the same secret)\n"
            + "  its events, live: relaybox demo --url "
            + f"{settings.public_url.rstrip('/')} --auth 'User ..., Organization ...'"
            + " [--element googledrive]\n"
        )

    async def on_stop(_: Any) -> None:
        await gdrive_app.state.sandbox.aclose()
        await sandbox_app.state.sandbox.aclose()

    mounts = {"/sandbox": serving.both(sandbox_app, gdrive_app, exposed)}
    return settings, mounts, on_ready, on_stop, sandbox_app.state.sandbox.stop_waiting


def _sandbox_exposure(
    host: str, public: bool, settings: Settings, flag: str, names: list[str]
) -> Exposure:
    """The sandbox's exposure; a refused one exits 2 with the reason."""
    from relaybox.sandbox_serving import SandboxRefused, exposure

    try:
        return exposure(host, public=public, settings=settings, flag=flag, names=names)
    except SandboxRefused as exc:
        typer.echo(f"relaybox: {exc}", err=True)
        raise typer.Exit(2) from None


class DemoElement(enum.StrEnum):
    """The providers `relaybox demo` can show (relaybox/demo.py `DEMOS`)."""

    dropbox = "dropbox"
    googledrive = "googledrive"


@app.command()
def demo(
    auth: Annotated[
        str,
        typer.Option(
            envvar="RELAYBOX_DEMO_AUTH",
            help='The Authorization value printed by the first start: "User ..., Organization ..."',
        ),
    ],
    url: Annotated[
        str, typer.Option(help="The running `relaybox serve --sandbox`.")
    ] = "http://127.0.0.1:8000",
    port: Annotated[int, typer.Option(help="Port of the demo callback receiver.")] = 8001,
    changes: Annotated[bool, typer.Option(help="Make a few changes by itself.")] = True,
    element: Annotated[
        DemoElement, typer.Option(help="Whose sandbox account to connect.")
    ] = DemoElement.dropbox,
) -> None:
    """Connect the sandbox account (Dropbox's, or Google Drive's with --element googledrive),
    receive its events here and print them as they arrive; Ctrl+C (or SIGTERM) stops it and
    removes its instance."""
    from relaybox.demo import DemoError, run_demo

    try:
        asyncio.run(
            run_demo(
                base=url.rstrip("/"),
                auth=auth,
                port=port,
                changes=changes,
                show=typer.echo,
                sandbox_token=Settings().sandbox_token,
                element=element.value,
            )
        )
    except DemoError as exc:
        typer.echo(f"relaybox demo: {exc}", err=True)
        raise typer.Exit(1) from None
    except (KeyboardInterrupt, asyncio.CancelledError):  # a second Ctrl+C while cleaning up
        raise typer.Exit(130) from None


@app.command()
def worker() -> None:
    """Run only the background workers (scale-out with a shared PostgreSQL)."""
    _logging()
    asyncio.run(_run_worker(Settings()))


async def _run_worker(settings: Settings) -> None:
    from relaybox.pipeline.runner import Workers
    from relaybox.runtime import Runtime

    runtime = await Runtime.start(settings)
    pool = Workers(runtime)
    pool.start()
    settle_heap()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await pool.stop()
    await runtime.close()


@app.command("sandbox")
def sandbox_command(
    host: Host = "127.0.0.1",
    port: Port = 8010,
    ssl_certfile: Annotated[Path | None, typer.Option(help="TLS certificate (PEM).")] = None,
    ssl_keyfile: Annotated[Path | None, typer.Option(help="TLS private key (PEM).")] = None,
    state_file: Annotated[Path | None, typer.Option(help="Keep the sandbox state here.")] = None,
    public: Annotated[
        bool, typer.Option(help="Allow a host beyond loopback; the control API then needs a token.")
    ] = False,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(help="A further host name clients reach it by (repeatable)."),
    ] = None,
) -> None:
    """Run the sandboxes alone (on loopback unless --public): Dropbox at the root, Google
    Drive under /gdrive."""
    _logging()
    from relaybox import sandbox_serving as serving
    from relaybox.gdrive_sandbox.app import create_app as create_gdrive
    from relaybox.sandbox.app import create_app as create_sandbox

    exposed = _sandbox_exposure(host, public, Settings(), "--public", allowed_host or [])
    sandbox_app = create_sandbox(state_file=state_file, access=exposed.access)
    gdrive_app = create_gdrive(state_file=serving.gdrive_state_file(state_file))
    scheme = "https" if ssl_certfile else "http"
    base = f"{scheme}://{host}:{port}"
    lines = serving.token_lines(exposed, base)
    typer.echo(
        f"Dropbox sandbox: {base}\n{lines}" + serving.gdrive_lines(exposed, base + serving.GDRIVE)
    )
    run_server(
        serving.both(sandbox_app, gdrive_app, exposed),
        on_shutdown=[sandbox_app.state.sandbox.stop_waiting],
        host=host,
        port=port,
        ssl_certfile=str(ssl_certfile) if ssl_certfile else None,
        ssl_keyfile=str(ssl_keyfile) if ssl_keyfile else None,
        log_config=logs.UVICORN_LOGGING,
    )


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Apply every pending migration."""

    async def run() -> None:
        from relaybox.store.db import create_engine, upgrade

        engine = create_engine(Settings().resolved_database_url)
        await upgrade(engine)
        await engine.dispose()

    asyncio.run(run())
    typer.echo("database is up to date")


def _admin(work: Callable[[Runtime], Awaitable[T]]) -> T:
    """Run an admin command's `work` with a runtime; a LookupError exits 1 with its message."""

    async def run() -> T:
        from relaybox.runtime import Runtime

        runtime = await Runtime.start(Settings())
        try:
            return await work(runtime)
        finally:
            await runtime.close()

    try:
        return asyncio.run(run())
    except LookupError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


UserId = Annotated[int, typer.Argument(help="User id (see list-users).")]
OrgId = Annotated[int, typer.Argument(help="Organization id (see list-orgs).")]


@admin_app.command("create-org")
def create_org(
    name: Annotated[str, typer.Argument(help="Organization name.")],
    email: Annotated[str, typer.Option(help="Its first user's e-mail.")] = "admin@localhost",
) -> None:
    """Create an organization with a first user; prints their secrets once."""
    from relaybox.services.orgs import create_org as create

    created = _admin(lambda runtime: create(runtime, name, email))
    typer.echo(f"organization {created.org_id}")
    typer.echo(f"Authorization: User {created.user_secret}, Organization {created.org_secret}")


@admin_app.command("create-user")
def create_user(
    org_id: OrgId,
    email: Annotated[str, typer.Argument(help="The user's e-mail.")],
) -> None:
    """Add a user to an organization; prints the user secret once."""
    from relaybox.services.orgs import create_user as create

    created = _admin(lambda runtime: create(runtime, org_id, email))
    typer.echo(f"User {created.user_secret}")


@admin_app.command("list-orgs")
def list_orgs() -> None:
    """List organizations: id, name, number of users and instances (never secrets)."""
    from relaybox.services.orgs import list_orgs as listing

    for org in _admin(listing):
        typer.echo(f"{org.id}\t{org.name}\tusers={org.users}\tinstances={org.instances}")


@admin_app.command("list-users")
def list_users(org_id: OrgId) -> None:
    """List an organization's users: id, e-mail, creation time (never secrets)."""
    from relaybox.core.clock import iso
    from relaybox.services.orgs import list_users as listing

    for user in _admin(lambda runtime: listing(runtime, org_id)):
        typer.echo(f"{user.id}\t{user.email}\t{iso(user.created_at)}")


@admin_app.command("revoke-user")
def revoke_user(user_id: UserId) -> None:
    """Delete a user: their secret and their console sessions stop working at once."""
    from relaybox.services.credentials import revoke_user as revoke

    ended = _admin(lambda runtime: revoke(runtime, user_id))
    typer.echo(f"user {user_id} revoked; {ended} console sessions ended")


@admin_app.command("rotate-user-secret")
def rotate_user_secret(user_id: UserId) -> None:
    """Give a user a new secret, printed once; the old one and its console sessions stop working."""
    from relaybox.services.credentials import rotate_user_secret as rotate

    rotated = _admin(lambda runtime: rotate(runtime, user_id))
    typer.echo(f"User {rotated.secret}")
    typer.echo(f"the old secret no longer works; {rotated.sessions_ended} console sessions ended")


@admin_app.command("rotate-org-secret")
def rotate_org_secret(org_id: OrgId) -> None:
    """Give an organization a new secret, printed once; the old one stops working at once, and
    every console session of its users ends."""
    from relaybox.services.credentials import rotate_org_secret as rotate

    rotated = _admin(lambda runtime: rotate(runtime, org_id))
    typer.echo(f"Organization {rotated.secret}")
    typer.echo(f"the old secret no longer works; {rotated.sessions_ended} console sessions ended")


@admin_app.command("generate-key")
def generate_key() -> None:
    """Print a fresh secret key (for RELAYBOX_SECRET_KEY; see docs/operations.md)."""
    from relaybox.crypto import generate_key as generate

    typer.echo(generate())


@admin_app.command("rotate-key")
def rotate_key(
    retire_old: Annotated[
        bool,
        typer.Option("--retire-old", help="After a rotation: drop every key but the first one."),
    ] = False,
) -> None:
    """Re-encrypt every stored secret under a new key, without downtime (docs/operations.md).

    With the key file (no RELAYBOX_SECRET_KEY): generates a key, puts it first in the file
    (running servers pick it up) and re-encrypts every row. With RELAYBOX_SECRET_KEY:
    re-encrypts every row under the first key of that list.
    """

    async def run() -> None:
        from relaybox.crypto import SecretBox
        from relaybox.services import keys
        from relaybox.store.db import create_engine, session_factory, upgrade

        settings = Settings()
        engine = create_engine(settings.resolved_database_url)
        try:
            await upgrade(engine)
            sessions = session_factory(engine)
            box = SecretBox.load(settings.secret_key, settings.data_dir)
            if retire_old:
                done = await keys.retire_old_keys(sessions, box, box.key_file)
            elif box.key_file is not None:
                done = await keys.rotate_key_file(sessions, settings.data_dir)
            else:
                done = await keys.reencrypt_all(sessions, box)
        finally:
            await engine.dispose()
        typer.echo(f"re-encrypted {done.rewritten} instances; {done.remaining} not yet rotated")
        if done.new_key:
            typer.echo(f"new key: {done.new_key}")
            typer.echo(f"written first in {done.key_file} (old keys kept after it)")
            typer.echo("to drop the old keys afterwards: relaybox admin rotate-key --retire-old")
        elif retire_old and done.remaining == 0:
            where = done.key_file or "RELAYBOX_SECRET_KEY (remove every key but the first)"
            typer.echo(f"old keys retired: only the first key is needed now ({where})")
        if done.remaining:
            typer.echo("some instances are not rotated yet; run the command again", err=True)
            raise typer.Exit(1)

    asyncio.run(run())
