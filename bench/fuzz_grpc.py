"""The gRPC fuzzer, long run: N hypothesis-built MilvusService requests against a real server.

Run: .venv/bin/python bench/fuzz_grpc.py --requests 20000 [--uri http://127.0.0.1:19530]

Without ``--uri`` it starts ``sheafdb serve --auth`` on a free port in a temporary data dir and
stops it by PID at the end. The requests and the judgement are tests/e2e/grpc_fuzz.py's (the
default test suite runs a short run of the same). Prints the requests sent per method and the
reply codes seen; on a finding, hypothesis's smallest failing request and exit status 1.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from google.protobuf.message import Message  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from soak import start_server, stop_server  # noqa: E402 - bench/ is the script's directory

from tests.e2e.grpc_fuzz import FuzzTarget, create_target, requests  # noqa: E402

TOKEN = "root:Milvus"


def run(uri: str, count: int) -> int:
    create_target(uri, TOKEN)
    target = FuzzTarget(uri.removeprefix("http://"), TOKEN)

    @settings(
        max_examples=count,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(request=requests())
    def fuzz(request: tuple[str, Message]) -> None:
        target.send(*request)

    started = time.monotonic()
    failed = False
    try:
        fuzz()
    except Exception as err:  # noqa: BLE001 - the finding, reported below
        failed = True
        print(f"FINDING: {err}")
    finally:
        target.close()
    sent = sum(target.calls.values())
    print(f"fuzz_grpc: {sent} requests in {time.monotonic() - started:.0f} s, {len(target.calls)} methods")
    print("reply codes: " + ", ".join(f"{code}: {n}" for code, n in sorted(target.codes.items())))
    print("requests per method (top 25): " + ", ".join(f"{m} {n}" for m, n in target.calls.most_common(25)))
    print("findings: 1" if failed else "findings: 0")
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--uri", help="a running server started with --auth (default: start one)")
    args = parser.parse_args()
    if args.uri:
        return run(args.uri, args.requests)
    with tempfile.TemporaryDirectory(prefix="sheafdb-fuzz-") as tmp:
        process, uri = start_server(Path(tmp))
        try:
            return run(uri, args.requests)
        finally:
            stop_server(process)


if __name__ == "__main__":
    sys.exit(main())
