"""``sheafdb serve``: parse the flags, start the server, stop it cleanly on SIGTERM/SIGINT."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from sheafdb.api.front import check_bind_safety
from sheafdb.api.server import Server, ServerConfig, StartupError
from sheafdb.errors import UnsafeBindRefused

log = logging.getLogger("sheafdb")


def add_serve_flags(serve: argparse.ArgumentParser) -> None:
    """The flags of ``sheafdb serve`` (the README's flags table is checked against them)."""
    serve.add_argument("--data-dir", type=Path, default=Path("./sheafdb-data"), help="where data lives")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on")
    serve.add_argument("--port", type=int, default=19530, help="port for gRPC and REST (0: any free port)")
    serve.add_argument(
        "--auth", action="store_true", help="require a login (user root, password Milvus until changed)"
    )
    serve.add_argument(
        "--insecure", action="store_true", help="allow listening on a non-loopback address without --auth"
    )
    serve.add_argument(
        "--catalog",
        metavar="URL",
        help="keep the catalog in PostgreSQL (postgresql://user@host:port/db) instead of the data dir",
    )
    serve.add_argument(
        "--objects",
        metavar="URL",
        help="keep segment and index files in S3 (s3://bucket/prefix?endpoint_override=host:port&scheme=http)"
        " instead of the data dir; credentials from AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sheafdb", description="A Milvus-compatible vector database.")
    commands = parser.add_subparsers(dest="command", required=True)
    add_serve_flags(commands.add_parser("serve", help="run the server (gRPC and REST v2 on one port)"))
    return parser


def serve(args: argparse.Namespace) -> int:
    try:
        check_bind_safety(args.host, auth_enabled=args.auth, insecure=args.insecure)
    except UnsafeBindRefused as exc:
        log.error("SheafDB will not start: %s", exc.message)
        return 2
    server = Server(
        ServerConfig(
            data_dir=args.data_dir,
            host=args.host,
            port=args.port,
            auth_enabled=args.auth,
            catalog_url=args.catalog,
            objects_url=args.objects,
        )
    )
    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        server.start()
    except StartupError as exc:
        log.error("SheafDB cannot start: %s", exc)
        return 2
    # The main thread only waits for a signal; stopping happens here, not in the handler.
    while not stop_requested.wait(0.2):
        pass
    server.stop()
    # Everything acknowledged is durable and every store is closed. An index build may still
    # be running inside faiss on its daemon thread (closing does not wait for builds of
    # minutes): leave now, without the C++ static destructors that would abort under it.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        return serve(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
