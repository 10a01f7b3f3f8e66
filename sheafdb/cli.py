"""``sheafdb serve``: parse the flags, start the server, stop it cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from sheafdb.api.server import Server, ServerConfig, StartupError


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="sheafdb", description="A Milvus-compatible vector database.")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server")
    serve.add_argument("--data-dir", type=Path, default=Path("./sheafdb-data"), help="where data lives")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=19530, help="port to listen on (0: any free port)")
    return parser.parse_args(argv)


def serve(args: argparse.Namespace) -> int:
    server = Server(ServerConfig(data_dir=args.data_dir, host=args.host, port=args.port))
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        server.start()
    except StartupError as exc:
        logging.getLogger("sheafdb").error("SheafDB cannot start: %s", exc)
        return 2
    # The main thread only waits for a signal; stopping happens here, not in the handler.
    while not stop_requested.wait(0.5):
        pass
    server.stop()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        return serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
