#!/usr/bin/env python3
"""A local copy of an upstream download site, for tests of the no-mirror install path.

Serves a directory laid out like the forge (e.g. ROOT/ollama/ollama/releases/download/v<V>/<archive>,
ROOT/ggml-org/llama.cpp/archive/<commit>.tar.gz) on 127.0.0.1, on a free port, so that a test can point
only a role's base URL (ollama_base_url, llamacpp_source_base_url) at it and set no artifact mirror.
Every GET is appended to a log, so a test can prove the files came from here.

    python tests/infra/upstream_server.py --root DIR --port-file FILE --log FILE [--lifetime S]

writes its port to FILE once it listens and its pid to FILE.pid; it stops on SIGTERM or after
--lifetime seconds, whichever comes first (a failed test run cannot leave it behind).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import signal
import sys
import threading
from pathlib import Path


class Handler(http.server.SimpleHTTPRequestHandler):
    log_path: Path | None = None

    def log_message(self, format: str, *args: object) -> None:
        pass

    def send_head(self):  # type: ignore[no-untyped-def]
        if self.log_path is not None:
            with self.log_path.open("a") as log:
                log.write(f"{self.command} {self.path}\n")
        return super().send_head()


def start(root: Path, log: Path | None = None) -> http.server.ThreadingHTTPServer:
    """Serve root on 127.0.0.1:<free port> from a daemon thread; the caller calls shutdown()."""
    handler = type("LoggingHandler", (Handler,), {"log_path": log})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(handler, directory=str(root))
    )
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--port-file", type=Path, required=True)
    parser.add_argument("--log", type=Path, required=True)
    parser.add_argument("--lifetime", type=float, default=1800.0, help="seconds before it stops by itself")
    args = parser.parse_args(argv)
    server = start(args.root.resolve(), args.log)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    args.port_file.with_name(args.port_file.name + ".pid").write_text(f"{os.getpid()}\n")
    args.port_file.write_text(f"{server.server_address[1]}\n")
    done.wait(args.lifetime)
    server.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
