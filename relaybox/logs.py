"""Logging setup: readable lines, quiet libraries, and no secrets in access logs."""

from __future__ import annotations

import logging
import re

# Query parameters whose values must never reach a log line.
_SECRET_QUERY = re.compile(r"((?:apiSecret|client_secret|code|challenge)=)[^&\s\"]*", re.IGNORECASE)


class RedactQuerySecrets(logging.Filter):
    """Masks secret query values in uvicorn's access log ("GET /x?apiSecret=... HTTP/1.1")."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                _SECRET_QUERY.sub(r"\1***", arg) if isinstance(arg, str) else arg
                for arg in record.args
            )
        return True


def configure() -> None:
    # Our formats name no process or thread: skip looking them up for every record (a
    # system call per access-log line).
    logging.logProcesses = logging.logThreads = logging.logMultiprocessing = False
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("alembic", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").addFilter(RedactQuerySecrets())
