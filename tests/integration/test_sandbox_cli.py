"""`relaybox sandbox --ssl-certfile --ssl-keyfile` serves unmodified HTTPS clients.

The sandbox runs as its own process with a certificate from a ``trustme``
CA. httpx (trusting that CA) sets up an app and an account; then the
official SDK, unmodified and in a process of its own, is pointed at the
sandbox only through its documented environment (``DROPBOX_API_HOST`` and
friends, ``REQUESTS_CA_BUNDLE``) and uploads, lists and reads the account.
"""

import json
import os
import socket
import ssl
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import trustme

REDIRECT = "https://app.example.com/auth"

SDK_SCRIPT = textwrap.dedent(
    """
    import json, sys
    import dropbox

    dbx = dropbox.Dropbox(sys.argv[1], max_retries_on_error=0)
    dbx.files_upload(b"hello over TLS", "/tls/hello.txt")
    listed = dbx.files_list_folder("", recursive=True)
    me = dbx.users_get_current_account()
    print(json.dumps({
        "account_id": me.account_id,
        "paths": [e.path_display for e in listed.entries],
    }))
    """
)


@dataclass
class Running:
    base: str
    host: str
    ca_file: Path
    process: subprocess.Popen[bytes]

    def http(self) -> httpx.Client:
        return httpx.Client(
            base_url=self.base,
            verify=ssl.create_default_context(cafile=str(self.ca_file)),
            timeout=10,
        )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Running]:
    authority = trustme.CA()
    cert = authority.issue_cert("127.0.0.1", "localhost")
    ca_file, cert_file, key_file = tmp_path / "ca.pem", tmp_path / "cert.pem", tmp_path / "key.pem"
    authority.cert_pem.write_to_path(str(ca_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cert.private_key_pem.write_to_path(str(key_file))
    port = free_port()
    command = [sys.executable, "-m", "relaybox", "sandbox", "--port", str(port)]
    command += ["--ssl-certfile", str(cert_file), "--ssl-keyfile", str(key_file)]
    command += ["--state-file", str(tmp_path / "sandbox.json")]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    host = f"127.0.0.1:{port}"
    server = Running(f"https://{host}", host, ca_file, process)
    try:
        deadline = time.monotonic() + 30
        with server.http() as http:
            while True:
                assert process.poll() is None, process.stderr.read() if process.stderr else ""
                try:
                    if http.get("/_sandbox/accounts").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert time.monotonic() < deadline, "the sandbox did not start"
                time.sleep(0.1)
        yield server
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stderr is not None:
            process.stderr.close()


def test_sandbox_serves_https_to_httpx_and_the_unmodified_sdk(running: Running) -> None:
    with running.http() as http:
        assert http.post(
            "/_sandbox/apps", json={"app_key": "cli-key", "app_secret": "cli-secret"}
        ).is_success
        account_id = http.post("/_sandbox/accounts", json={"email": "tls@example.com"}).json()[
            "account_id"
        ]
        code = http.post(
            "/_sandbox/authorize",
            json={"app_key": "cli-key", "account_id": account_id, "redirect_uri": REDIRECT},
        ).json()["code"]
        tokens = http.post(
            "/oauth2/token",
            data={
                "grant_type": "authorization_code",
                "code": code,
                "redirect_uri": REDIRECT,
                "client_id": "cli-key",
                "client_secret": "cli-secret",
            },
        )
        assert tokens.status_code == 200 and tokens.headers["content-type"] == "application/json"
        access_token = tokens.json()["access_token"]
        me = http.post(
            "/2/users/get_current_account", headers={"Authorization": f"Bearer {access_token}"}
        )
        assert me.status_code == 200 and me.json()["account_id"] == account_id

    with pytest.raises(httpx.ConnectError):  # a client that does not trust the CA refuses it
        httpx.get(f"{running.base}/_sandbox/accounts", verify=True, timeout=10)

    env = {
        **os.environ,
        "DROPBOX_API_HOST": running.host,
        "DROPBOX_API_CONTENT_HOST": running.host,
        "DROPBOX_API_NOTIFY_HOST": running.host,
        "REQUESTS_CA_BUNDLE": str(running.ca_file),
    }
    result = subprocess.run(
        [sys.executable, "-c", SDK_SCRIPT, access_token],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    seen = json.loads(result.stdout)
    assert seen == {"account_id": account_id, "paths": ["/tls", "/tls/hello.txt"]}
