"""`animaflow serve`: the control plane on 127.0.0.1:8800 unless ANIMAFLOW_HOST/PORT say otherwise."""

from __future__ import annotations

import argparse
import logging

import uvicorn

from animaflow_control.app import create_app
from animaflow_control.settings import Settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="animaflow", description="AnimaFlow Inference control plane")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API and the dashboard")
    serve.add_argument("--host", help="address to bind (default ANIMAFLOW_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default ANIMAFLOW_PORT or 8800)")
    args = parser.parse_args(argv)

    overrides = {
        name: value for name, value in (("host", args.host), ("port", args.port)) if value is not None
    }
    settings = Settings(**overrides)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(
        f"AnimaFlow control plane on http://{settings.host}:{settings.port}/ (API docs at /docs)", flush=True
    )
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level="info")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
