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
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    for noisy in ("alembic", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    logging.getLogger("uvicorn.access").addFilter(RedactQuerySecrets())
