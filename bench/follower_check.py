"""A query worker's read path with and without the shared change counter, in one thread.

A primary engine and two followers of its data dir in this process (engine/follower.py): one
told of the counter (storage/change_counter.py, as ``serve --workers N`` runs them), one not
(it asks SQLite's ``data_version`` and stats the log before every read). Each round runs the
same nq=1 search (HNSW over a sealed segment, plus growing rows) on each follower in turn;
the thread CPU per search, medians of the rounds. Nothing changes between the reads, so the
follower with the counter skips its checks every time: the difference is their cost.

Usage: .venv/bin/python bench/follower_check.py [--rounds 7] [--searches 2000]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sheafdb.engine.config import EngineConfig  # noqa: E402
from sheafdb.engine.engine import Engine  # noqa: E402
from sheafdb.engine.follower import Follower, FollowerConfig  # noqa: E402
from sheafdb.engine.models import SearchRequest  # noqa: E402
from tests.engine.conftest import basic_schema, make_rows  # noqa: E402

DB = "default"
HNSW = {"index_type": "HNSW", "metric_type": "L2", "M": "16", "efConstruction": "100"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--searches", type=int, default=2000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        config = EngineConfig(
            data,
            fsync=False,
            restore_loads=False,
            share_pages=True,
            shared_changes=True,
            compaction_min_segments=None,
        )
        primary = Engine(config)
        primary.create_collection(DB, "c", basic_schema())
        primary.insert(DB, "c", make_rows(range(2000)))
        primary.flush(DB, ["c"])
        primary.create_index(DB, "c", "vec", "", HNSW)
        primary.wait_for_index_builds(timeout=120)
        primary.insert(DB, "c", make_rows(range(2000, 2100)))  # growing rows: a log to follow
        primary.load_collection(DB, "c")
        primary.wait_for_load(DB, "c", timeout=120)
        followers = {
            "checks every read": Follower(FollowerConfig(data)),
            "change counter": Follower(FollowerConfig(data, shared_changes=True)),
        }
        request = SearchRequest(
            "c", make_rows([5]).column("vec").to_numpy(zero_copy_only=False)[0].reshape(1, -1), 10
        )
        per_search: dict[str, list[float]] = {name: [] for name in followers}
        for follower in followers.values():
            for _ in range(200):  # warm: loads done, caches filled
                follower.search(DB, request)
        for _ in range(args.rounds):
            for name, follower in followers.items():
                started = time.thread_time_ns()
                for _ in range(args.searches):
                    follower.search(DB, request)
                per_search[name].append((time.thread_time_ns() - started) / args.searches / 1000)
        for follower in followers.values():
            follower.close()
        primary.close()
    base = statistics.median(per_search["checks every read"])
    for name, values in per_search.items():
        median = statistics.median(values)
        print(f"{name}: {median:.1f} us thread CPU per search ({median / base:.2f}x; {args.rounds} rounds)")


if __name__ == "__main__":
    main()
