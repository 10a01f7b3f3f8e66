"""The catalog's timestamp allocator: one counter row every writer process reserves from.

Why: two processes that each ran their own clock-based oracle (storage/timestamps.py) could
hand out the same timestamp, or one lower than the other's last, whenever their clocks
disagree; and a writer taking over a collection would have to recover its log before it
knew a floor to stay above. A shared counter in the catalog's database settles both: every
reservation is above every earlier one, whichever process made it, so timestamps are unique
across writers and a writer's first timestamp after it took over is above everything its
predecessor could have used.

A mixin of ``SqlCatalog`` (its connection and transactions). The row ``meta('ts_reserved')``
holds the last timestamp reserved. A reservation of ``count`` moves it to
``max(row, floor) + count`` and hands out the block above the old value: the UPDATE takes the
row lock, so of two processes reserving at once the second waits and builds on the first's
value. ``floor`` is the wall clock as a hybrid timestamp (and the caller's own floor), so
timestamps still read as Milvus's do (milliseconds in the high bits).

Unfenced and not counted (``bookkeeping``): a reservation changes nothing a reader sees, and
one made by a deposed writer is merely skipped (it can append nothing with it).
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Any, Protocol

TIMESTAMP_ROW = "ts_reserved"


class _Transactions(Protocol):
    def _tx(self, *, bookkeeping: bool = ...) -> AbstractContextManager[Any]: ...


class AllocatorRows:
    def reserve_timestamps(self: _Transactions, count: int, floor: int) -> range:
        """``count`` consecutive timestamps, each above every one reserved before (by any
        process on this catalog) and above ``floor``."""
        if count < 1:
            raise ValueError(f"cannot reserve {count} timestamps")
        with self._tx(bookkeeping=True) as cur:
            cur.execute("INSERT INTO meta VALUES (?, 0) ON CONFLICT DO NOTHING", (TIMESTAMP_ROW,))
            cur.execute(
                "UPDATE meta SET value = CASE WHEN value > ? THEN value ELSE ? END + ? WHERE key = ?",
                (floor, floor, count, TIMESTAMP_ROW),
            )
            (end,) = cur.execute("SELECT value FROM meta WHERE key = ?", (TIMESTAMP_ROW,)).fetchone()
        end = int(end)
        return range(end - count + 1, end + 1)
