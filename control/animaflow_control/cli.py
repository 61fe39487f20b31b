"""`animaflow serve`: the control plane on 127.0.0.1:8800 unless ANIMAFLOW_HOST/PORT say otherwise.
`animaflow admin-token --reset`: a new admin token when the one in the admin-token file is lost or revoked."""

from __future__ import annotations

import argparse
import logging
from types import FrameType

import uvicorn

from animaflow_control.app import create_app
from animaflow_control.services.auth import Auth
from animaflow_control.services.container import Services
from animaflow_control.services.files import secure_data_dir
from animaflow_control.services.store import Store
from animaflow_control.settings import Settings


class Server(uvicorn.Server):
    """uvicorn waits for every open response to end before the app's shutdown runs, and a live log is
    open for as long as its run: on the stop signal, end the streams and start stopping the runs first."""

    def __init__(self, config: uvicorn.Config, services: Services) -> None:
        super().__init__(config)
        self.services = services

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.services.begin_shutdown()
        super().handle_exit(sig, frame)


def admin_token(reset: bool) -> int:
    """Works beside a running server (SQLite WAL): the new token is valid at once, the old one's sessions
    end at once. Whoever can run this can read the data dir, so it grants nothing that was not theirs."""
    settings = Settings()
    secure_data_dir(settings)
    store = Store(settings.db_file)
    try:
        auth, token_file = Auth(store, settings.session_hours), settings.admin_token_file
        if not reset:
            row = auth.file_token(token_file)
            if row is not None:
                print(f"{token_file} holds active token {row['id']} ({row['name']}, {row['role']}).")
                return 0
            print(f"{token_file} holds no active token: run `animaflow admin-token --reset` for a new one.")
            return 1
        secret, revoked = auth.reset_admin(token_file)
    finally:
        store.close()
    print(
        f"\n  A new admin token, shown only this once (also in {token_file}, mode 0600):\n\n    {secret}\n",
        flush=True,
    )
    if revoked is not None:
        print(f"  The token the file held before (id {revoked}) is revoked; its sessions are closed.\n")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="animaflow", description="AnimaFlow Inference control plane")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the API and the dashboard")
    serve.add_argument("--host", help="address to bind (default ANIMAFLOW_HOST or 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port (default ANIMAFLOW_PORT or 8800)")
    token = commands.add_parser(
        "admin-token", help="check the admin-token file's token; --reset mints a new one (recovery)"
    )
    token.add_argument(
        "--reset", action="store_true", help="new admin token in the file, printed once; the old one revoked"
    )
    args = parser.parse_args(argv)
    if args.command == "admin-token":
        return admin_token(args.reset)

    overrides = {
        name: value for name, value in (("host", args.host), ("port", args.port)) if value is not None
    }
    settings = Settings(**overrides)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    print(
        f"AnimaFlow control plane on http://{settings.host}:{settings.port}/ (API docs at /docs)", flush=True
    )
    app = create_app(settings)
    # The grace bounds the wait for other open requests; streams and runs are ended by handle_exit.
    config = uvicorn.Config(
        app, host=settings.host, port=settings.port, log_level="info", timeout_graceful_shutdown=10
    )
    Server(config, app.state.services).run()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
