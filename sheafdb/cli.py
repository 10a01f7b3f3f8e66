"""``sheafdb serve``: parse the flags, start the server, stop it cleanly on SIGTERM/SIGINT.

The other commands (``collections``, ``describe``, ``load`` ...) talk to a running server
(remote.py)."""

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
from typing import TYPE_CHECKING

from sheafdb.errors import UnsafeBindRefused
from sheafdb.remote import COMMANDS, add_client_commands, run_client_command
from sheafdb.settings import (
    ROLES,
    SettingsError,
    check_cluster_flags,
    parse_size,
    parse_workers,
    read_config_file,
)

if TYPE_CHECKING:
    from sheafdb.api.cluster.shard_writer_role import ShardWriterServer
    from sheafdb.api.server import Server
    from sheafdb.api.serving import ServingProcess

log = logging.getLogger("sheafdb")

# The memory loads may use when no budget is given: a share of the machine's RAM, leaving the
# rest to growing segments, request buffers and the OS page cache.
DEFAULT_MEMORY_BUDGET = "70%"


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
        "--no-console",
        action="store_true",
        help="turn off the web console at http://HOST:PORT/",
    )
    serve.add_argument(
        "--memory-budget",
        default=DEFAULT_MEMORY_BUDGET,
        help="memory loads may use: 8GiB, 512MiB, 2GB, bytes, or a share of RAM such as 60%%",
    )
    serve.add_argument(
        "--evict-under-pressure",
        action="store_true",
        help="a load that would not fit may release loaded, unpinned collections to make room",
    )
    serve.add_argument(
        "--workers",
        default="1",
        help="processes serving search and query over the same loaded data: a number, or auto (the cores)",
    )
    serve.add_argument(
        "--config", type=Path, default=None, help="a TOML file with any of these settings (flags win)"
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
    serve.add_argument(
        "--lease-ttl",
        type=float,
        default=5.0,
        metavar="SECONDS",
        help="with --catalog: servers on one catalog elect one writer by a lease of this ttl; the"
        " others wait as standbys and take over this long after the writer stops renewing",
    )
    serve.add_argument(
        "--cluster",
        metavar="ray://HOST:PORT",
        help="cluster mode on this Ray cluster (needs --catalog and --objects): the process is a --role",
    )
    serve.add_argument(
        "--role",
        choices=ROLES,
        default="proxy",
        help="with --cluster: proxy (serves clients, keeps no state), writer (the coordinator: lease holder"
        " or standby) or shard-writer (owns collections' logs: serves Insert, Upsert, Delete)",
    )
    serve.add_argument(
        "--object-cache-size",
        default=None,
        metavar="SIZE",
        help="with --objects: bound the local cache of S3 objects (sizes as --memory-budget; default"
        " unbounded); the least recently used files no loaded segment maps are evicted",
    )
    serve.add_argument(
        "--import-root",
        type=Path,
        default=None,
        metavar="DIR",
        help="bulk import reads the files it is given from this directory (default: the data dir);"
        " with --objects it reads object keys of that bucket instead",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="sheafdb", description="A Milvus-compatible vector database.")
    commands = parser.add_subparsers(dest="command", required=True)
    add_serve_flags(commands.add_parser("serve", help="run the server (gRPC and REST v2 on one port)"))
    add_client_commands(commands)
    return parser


def with_config_file(args: argparse.Namespace, argv: Sequence[str]) -> argparse.Namespace:
    """The settings of ``--config`` under the flags given on the command line."""
    if args.config is None:
        return args
    parser = argparse.ArgumentParser()
    add_serve_flags(parser)
    given = {
        action.dest
        for action in parser._actions
        for arg in argv
        for option in action.option_strings
        if arg == option or arg.startswith(option + "=")
    }
    defaults = {action.dest: action.default for action in parser._actions if action.option_strings}
    merged = vars(args).copy()
    for dest, value in read_config_file(args.config, defaults).items():
        if dest not in given:
            merged[dest] = value
    return argparse.Namespace(**merged)


def serve(args: argparse.Namespace, argv: Sequence[str] = ()) -> int:
    # Imported here: the client commands start in a tenth of a second without the server's stack.
    # A server uses neither pymilvus's client nor pandas: ~45 MB less (api/client_libraries.py).
    from sheafdb.api.client_libraries import keep_client_libraries_out

    keep_client_libraries_out()
    from sheafdb.api.front import check_bind_safety
    from sheafdb.api.server import Server, ServerConfig

    try:
        args = with_config_file(args, argv)
        budget = parse_size(args.memory_budget)
        object_cache = None if args.object_cache_size is None else parse_size(str(args.object_cache_size))
        workers = parse_workers(str(args.workers))
        check_cluster_flags(args.cluster, args.role, args.catalog, args.objects, workers)
        if not args.lease_ttl > 0:
            raise SettingsError(f"--lease-ttl must be a positive number of seconds, not {args.lease_ttl}")
        check_bind_safety(args.host, auth_enabled=args.auth, insecure=args.insecure)
    except SettingsError as exc:
        log.error("SheafDB will not start: %s", exc)
        return 2
    except UnsafeBindRefused as exc:
        log.error("SheafDB will not start: %s", exc.message)
        return 2
    if args.cluster and args.role == "proxy":
        # Only a proxy needs it, and its dependencies come with the cluster extra (httpx).
        from sheafdb.api.cluster.proxy import ProxyConfig, ProxyServer

        proxy = ProxyServer.for_catalog(ProxyConfig(args.catalog, host=args.host, port=args.port))
        return run_until_signalled(proxy)
    serving: type[Server | ShardWriterServer] = Server
    if args.cluster and args.role == "shard-writer":  # a log owner (serves Insert/Upsert/Delete)
        from sheafdb.api.cluster.shard_writer_role import ShardWriterServer

        serving = ShardWriterServer

    server = serving(
        ServerConfig(
            data_dir=args.data_dir,
            host=args.host,
            port=args.port,
            auth_enabled=args.auth,
            console=not args.no_console,
            memory_budget_bytes=budget,
            evict_under_pressure=args.evict_under_pressure,
            catalog_url=args.catalog,
            objects_url=args.objects,
            object_cache_bytes=object_cache,
            workers=workers,
            import_root=args.import_root,
            lease_ttl_s=args.lease_ttl,
            cluster_url=args.cluster,
        )
    )
    log.info("memory budget: %d bytes (%s)", budget, args.memory_budget)
    return run_until_signalled(server)


def run_until_signalled(server: ServingProcess) -> int:
    """Start ``server``, serve until SIGTERM / SIGINT, stop it, leave."""
    from sheafdb.api.serving import StartupError

    stop_requested = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop_requested.set()
        server.cancel_standby()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        server.start()
    except StartupError as exc:
        log.error("SheafDB cannot start: %s", exc)
        return 2
    # The main thread only waits for a signal; stopping happens here, not in the handler.
    while not stop_requested.wait(0.2):
        if server.stepped_down.is_set():
            log.error("SheafDB is no longer the writer (lease lost or given up, see above): stepping down")
            break
    server.stop()
    # Everything acknowledged is durable and every store is closed. An index build may still
    # be running inside faiss on its daemon thread (closing does not wait for builds of
    # minutes): leave now, without the C++ static destructors that would abort under it.
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    # 3: this writer was deposed or stepped down (its supervisor restarts it, as a standby).
    os._exit(3 if server.stepped_down.is_set() else 0)


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    if args.command in COMMANDS:
        return run_client_command(args)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.command == "serve":
        return serve(args, argv)
    return 2


if __name__ == "__main__":
    sys.exit(main())
