"""Which calls the wire server runs inline on its loop thread, and which on its pool.

Inline: the calls that only read memory this process holds and answer in about a
millisecond (search, query, version): a thread handoff would cost more than the call.
Everything else goes to the pool: loads, flushes, index builds, imports, DDL (each may wait
on disk, on locks held by long work, or on other processes), writes (they sync a log),
and any call whose request is larger than ``MAX_INLINE_REQUEST_BYTES`` (many queries at
once: long enough to let other connections wait). A call that forwards to another process
(a query worker's non-read calls, the cluster writer's reads on its workers) is never inline.

The price of inline: while a read runs, the loop reads no other connection of the process.
A read is short, except a query worker's first read of a collection whose load its follower
is still catching up with (it waits for it, bounded by the follower's ``load_wait_s``), and
a read of a collection released by its idle policy with ``sheafdb.reload_on_read`` (it loads
again and waits): the process's other connections then wait as long. Nothing a read waits
for needs the loop (loads run on the engine's loader threads), so it never deadlocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sheafdb.api.grpc.guard import SERVICE

# The reads served from this process's memory.
READS = ("Search", "HybridSearch", "Query")
# Calls answered from constants.
TRIVIAL = ("GetVersion", "Connect", "CheckHealth")
# Past this, a request is a big batch: run on the pool.
MAX_INLINE_REQUEST_BYTES = 256 * 1024


def inline_rule(names: Iterable[str]) -> Callable[[str, int], bool]:
    """``(method path, request bytes) -> inline?`` for the MilvusService methods ``names``."""
    paths = frozenset(f"/{SERVICE.full_name}/{name}" for name in names)

    def inline(path: str, request_bytes: int) -> bool:
        return path in paths and request_bytes <= MAX_INLINE_REQUEST_BYTES

    return inline
