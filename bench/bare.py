"""The ingest baseline: a bare Starlette endpoint that answers 200 to every POST.

    python -m bench.bare --port P

Served like `relaybox serve` serves relaybox (uvicorn, its default event loop and HTTP
parser, log level info with the access log on), so the difference wrk measures against
relaybox's receiver is relaybox's own work: signature check, JSON, the database write.
"""

from __future__ import annotations

import argparse

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route


async def ok(request: Request) -> Response:
    await request.body()
    return Response(status_code=200)


app = Starlette(routes=[Route("/{path:path}", ok, methods=["GET", "POST"])])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--no-access-log", action="store_true")
    args = parser.parse_args()
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="info",
        access_log=not args.no_access_log,
    )


if __name__ == "__main__":
    main()
