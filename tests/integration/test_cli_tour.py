"""The README's quick start and tour, run as a newcomer would: `serve --sandbox`, then `demo`."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.servers import free_port


def read_until(process: subprocess.Popen[str], pattern: str, timeout: float = 30) -> list[str]:
    """Lines of the process's output up to the first one matching `pattern`."""
    lines: list[str] = []
    deadline = time.monotonic() + timeout
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            if process.poll() is not None:
                break
            continue
        lines.append(line.rstrip("\n"))
        if re.search(pattern, line):
            return lines
    raise AssertionError(f"{pattern!r} never appeared in:\n" + "\n".join(lines))


@dataclass
class Server:
    base: str
    lines: list[str]
    env: dict[str, str]
    process: subprocess.Popen[str]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    port = free_port()
    env = {**os.environ, "RELAYBOX_DATA_DIR": str(tmp_path / "data"), "PYTHONUNBUFFERED": "1"}
    # No RELAYBOX_PUBLIC_URL: the URLs printed and used follow --port (`make run PORT=...`).
    for name in ("RELAYBOX_DATABASE_URL", "RELAYBOX_PUBLIC_URL", "RELAYBOX_SANDBOX_TOKEN"):
        env.pop(name, None)
    process = subprocess.Popen(
        [sys.executable, "-m", "relaybox", "serve", "--sandbox", "--port", str(port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=tmp_path,
    )
    try:
        lines = read_until(process, r"Application startup complete")
        yield Server(f"http://127.0.0.1:{port}", lines, env, process)
    finally:
        process.terminate()
        process.wait(timeout=30)


def test_serve_sandbox_serves_api_docs_and_sandbox(server: Server) -> None:
    base, lines = server.base, server.lines
    output = "\n".join(lines)
    assert re.search(r"Authorization: User \S+, Organization \S+", output)
    assert "app key:    relaybox-sandbox-app" in output
    assert re.search(r"account:    dbid:\S{35} ", output)
    assert f"files page: {base}/sandbox/_sandbox/ui" in output
    assert f"relaybox demo --url {base} " in output
    assert f"console {base}/ui/   API reference {base}/docs" in output
    for path in ("/docs", "/openapi.json", "/healthz", "/readyz", "/sandbox/_sandbox/ui"):
        assert httpx.get(base + path, timeout=10).status_code == 200, path
    paths = httpx.get(base + "/openapi.json", timeout=10).json()["paths"]
    assert "/elements/api-v2/instances" in paths


def demo_process(
    server: Server, cwd: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.Popen[str]:
    """`relaybox demo` as a newcomer runs it: from another folder, no RELAYBOX_DATA_DIR."""
    plain = {k: v for k, v in server.env.items() if k != "RELAYBOX_DATA_DIR"}
    return subprocess.Popen(
        [sys.executable, "-m", "relaybox", "demo", "--port", str(free_port()), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**plain, **(env or {})},
        cwd=cwd,
    )


def credential(server: Server) -> str:
    auth = re.search(r"Authorization: (User \S+, Organization \S+)", "\n".join(server.lines))
    assert auth is not None
    return auth.group(1)


def tour(server: Server, cwd: Path, *args: str) -> tuple[list[str], list[dict[str, Any]]]:
    """Run `relaybox demo ARGS` until its tour's last event, then Ctrl+C: what it printed,
    and the instances relaybox held while it ran."""
    auth = credential(server)
    demo = demo_process(server, cwd, "--url", server.base, *args, env={"RELAYBOX_DEMO_AUTH": auth})
    try:
        out = read_until(demo, r"connected to", timeout=60)
        held = httpx.get(
            f"{server.base}/elements/api-v2/instances", headers={"Authorization": auth}, timeout=10
        ).json()
        out += read_until(demo, r"DELETED", timeout=60)
        demo.send_signal(signal.SIGINT)  # Ctrl+C
        out += read_until(demo, r"instance \d+ removed", timeout=30)
        assert demo.wait(timeout=30) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    instances = httpx.get(
        f"{server.base}/elements/api-v2/instances", headers={"Authorization": auth}, timeout=10
    )
    assert instances.json() == [], "the demo removes its instance when it ends"
    events = [line for line in out if line.split(" ")[0] in {"CREATED", "UPDATED", "DELETED"}]
    assert [line.split()[0:2] for line in events] == [
        ["CREATED", "folders"],
        ["CREATED", "files"],
        ["UPDATED", "files"],
        ["UPDATED", "files"],
        ["DELETED", "folders"],
    ]
    assert "->" in events[3] and events[3].split()[2].endswith("/hello.txt")
    assert events[3].split()[4].endswith("/greeting.txt")
    assert all(line.endswith("signature ok") for line in events)
    return out, list(held)


def test_demo_prints_signed_events(server: Server, tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    out, held = tour(server, elsewhere)
    assert not (elsewhere / "relaybox-data").exists()
    assert [i["element"]["key"] for i in held] == ["dropbox"]
    assert any(f"{server.base}/sandbox/_sandbox/ui?account_id=dbid:" in line for line in out)
    logged = read_until(server.process, r"oauth/url")
    assert "apiSecret=***" in logged[-1]
    assert not re.search(r"apiSecret=(?!\*\*\*)", "\n".join(logged)), "secrets stay out of logs"


def test_demo_of_google_drive_prints_signed_events(server: Server, tmp_path: Path) -> None:
    """`--element googledrive`: the same tour through the Google Drive sandbox, its consent
    page and the push channel relaybox opens for the account."""
    assert "[--element googledrive]" in "\n".join(server.lines)
    out, held = tour(server, tmp_path, "--element", "googledrive")
    [instance] = held
    assert instance["element"]["key"] == "googledrive"
    assert instance["eventSource"] == "webhooks"
    assert instance["providerData"]["accountId"] in out[0]
    assert "connected to Google Drive account" in out[0]
    assert re.match(r"relaybox opened push channel \S+ for the account$", out[1])
    assert f"change files at {server.base}/sandbox/gdrive/_sandbox/ui?account=" in out[2]
    logged = read_until(server.process, r"oauth/url")
    assert "/elements/googledrive/oauth/url" in logged[-1] and "apiSecret=***" in logged[-1]


def test_demo_stops_on_sigterm_and_removes_its_instance(server: Server, tmp_path: Path) -> None:
    auth = credential(server)
    demo = demo_process(server, tmp_path, "--url", server.base, "--auth", auth, "--no-changes")
    try:
        read_until(demo, r"connected to", timeout=60)
        demo.send_signal(signal.SIGTERM)
        read_until(demo, r"instance \d+ removed", timeout=30)
        assert demo.wait(timeout=30) == 0
    finally:
        if demo.poll() is None:
            demo.kill()
            demo.wait()
    instances = httpx.get(
        f"{server.base}/elements/api-v2/instances", headers={"Authorization": auth}, timeout=10
    )
    assert instances.json() == []


@pytest.mark.parametrize(
    ("url", "auth", "says"),
    [
        ("{base}", "User wrong-1, Organization wrong-2", "relaybox refused the credential"),
        ("http://127.0.0.1:{free}", "User a, Organization b", "cannot reach relaybox at"),
    ],
)
def test_demo_fails_with_one_clear_line(
    server: Server, tmp_path: Path, url: str, auth: str, says: str
) -> None:
    target = url.format(base=server.base, free=free_port())
    demo = demo_process(server, tmp_path, "--url", target, "--auth", auth)
    output, _ = demo.communicate(timeout=60)
    assert demo.returncode == 1
    assert output.startswith(f"relaybox demo: {says}"), output
    assert output.count("\n") == 1 and "Traceback" not in output, output
