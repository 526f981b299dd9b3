"""The README's quick start and tour, run as a newcomer would: `serve --sandbox`, then `demo`."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

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
    env = {
        **os.environ,
        "RELAYBOX_DATA_DIR": str(tmp_path / "data"),
        "RELAYBOX_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("RELAYBOX_DATABASE_URL", None)
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
    for path in ("/docs", "/openapi.json", "/healthz", "/readyz", "/sandbox/_sandbox/ui"):
        assert httpx.get(base + path, timeout=10).status_code == 200, path
    paths = httpx.get(base + "/openapi.json", timeout=10).json()["paths"]
    assert "/elements/api-v2/instances" in paths


def test_demo_prints_signed_events(server: Server) -> None:
    base, lines, env = server.base, server.lines, server.env
    auth = re.search(r"Authorization: (User \S+, Organization \S+)", "\n".join(lines))
    assert auth is not None
    demo = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "relaybox",
            "demo",
            "--url",
            base,
            "--port",
            str(free_port()),
            "--auth",
            auth.group(1),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
        cwd=Path(env["RELAYBOX_DATA_DIR"]).parent,
    )
    try:
        out = read_until(demo, r"DELETED", timeout=60)
    finally:
        demo.terminate()
        demo.wait(timeout=30)
    events = [line for line in out if line.split(" ")[0] in {"CREATED", "UPDATED", "DELETED"}]
    assert [line.split()[0:2] for line in events] == [
        ["CREATED", "folders"],
        ["CREATED", "files"],
        ["UPDATED", "files"],
        ["UPDATED", "files"],
        ["DELETED", "folders"],
    ]
    assert "->" in events[3]
    assert all(line.endswith("signature ok") for line in events)
    app_secret = re.search(r"app secret: (\S+)", "\n".join(lines))
    assert app_secret is not None
    logged = read_until(server.process, r"oauth/url")
    assert "apiSecret=***" in logged[-1]
    assert app_secret.group(1) not in "\n".join(logged), "secrets stay out of the access log"
