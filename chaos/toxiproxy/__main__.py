"""``python -m chaos.toxiproxy [--host H] [--port P] [--config FILE]``: serve the API."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path

import uvicorn

from chaos.toxiproxy.api import make_app
from chaos.toxiproxy.proxy import Registry


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m chaos.toxiproxy", description=__doc__)
    parser.add_argument("--host", "-host", default="127.0.0.1")
    parser.add_argument("--port", "-port", type=int, default=8474)
    parser.add_argument("--config", "-config", type=Path, help="proxies to populate at start")
    args = parser.parse_args()
    proxies = json.loads(args.config.read_text()) if args.config else []
    asyncio.run(serve(args.host, args.port, proxies))


async def serve(host: str, port: int, proxies: list[dict[str, object]]) -> None:
    registry = Registry()
    await registry.populate(proxies)
    server = uvicorn.Server(
        uvicorn.Config(make_app(registry), host=host, port=port, log_level="warning", lifespan="on")
    )
    await server.serve()


if __name__ == "__main__":
    main()
