"""Logging setup: readable lines, quiet libraries, and no secrets in access logs."""

from __future__ import annotations

import logging
import re
from typing import Any

# Query parameters whose values must never reach a log line.
_SECRET_QUERY = re.compile(r"((?:apiSecret|client_secret|code|challenge)=)[^&\s\"]*", re.IGNORECASE)


class RedactQuerySecrets(logging.Filter):
    """Masks secret query values in uvicorn's access log ("GET /x?apiSecret=... HTTP/1.1")."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        # Only a path with a query string can hold one (most lines have none: no regex).
        if isinstance(args, tuple) and any(isinstance(a, str) and "=" in a for a in args):
            record.args = tuple(
                _SECRET_QUERY.sub(r"\1***", arg) if isinstance(arg, str) else arg for arg in args
            )
        return True


FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

UVICORN_LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": RedactQuerySecrets}},
    "loggers": {
        # No handlers of their own: their lines go to the root handler, in FORMAT, like
        # every other line (uvicorn's default access formatter copies each record and
        # colours it: a tenth of the receiver's CPU under load).
        "uvicorn": {"level": "INFO"},
        "uvicorn.error": {"level": "INFO"},
        "uvicorn.access": {"level": "INFO", "filters": ["redact"]},
    },
}
"""`uvicorn.run(log_config=...)`: uvicorn's own lines in relaybox's format."""


def configure() -> None:
    # Our formats name no process or thread: skip looking them up for every record (a
    # system call per access-log line).
    logging.logProcesses = logging.logThreads = logging.logMultiprocessing = False
    logging.basicConfig(level=logging.INFO, format=FORMAT)
    for noisy in ("alembic", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
