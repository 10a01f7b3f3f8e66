"""Which timestamp oracle a writer stamps with: its own clock, or the catalog's allocator.

Embedded (the SQLite catalog in the data dir), one process writes and its own hybrid clock
is enough: ``TimestampOracle``, above the floor recovered from the catalog and the logs.
On a PostgreSQL catalog, several writer processes can write (one after another on a
takeover today; side by side once collections are owned by different writers), so
timestamps come from blocks reserved in the catalog (``SharedTimestampOracle``,
storage/allocator_rows.py): unique across them, and each new writer's above every one issued
before it, whatever the hosts' clocks say.
"""

from __future__ import annotations

from sheafdb.storage.catalog import POSTGRES_SCHEMES, Catalog
from sheafdb.storage.timestamps import SharedTimestampOracle, TimestampOracle


def writer_oracle(catalog: Catalog, catalog_url: str | None, floor: int) -> TimestampOracle:
    if catalog_url is not None and catalog_url.startswith(POSTGRES_SCHEMES):
        return SharedTimestampOracle(catalog.reserve_timestamps, floor)
    return TimestampOracle(floor)
