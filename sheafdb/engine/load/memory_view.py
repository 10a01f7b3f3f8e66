"""The accountant's ledger with names instead of ids: what the console, the CLI, the REST
extension and the Prometheus metrics show.

The ledger keys blocks by collection, partition and segment ids; a person (and a metric
label) wants database, collection, partition and field names. Segments are summed away: one
block here is (database, collection, partition, kind, name) and its bytes. A block whose
collection was dropped meanwhile is left out (its bytes leave the ledger with the drop).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from sheafdb.engine.collection import Collection
from sheafdb.engine.load.memory import MAPPED, MemoryAccountant


@dataclass(frozen=True)
class ResidentBlock:
    """Bytes one kind of structure of one field holds in one partition.

    ``kind``: ``field`` (a raw column), ``mapped`` (a memory-mapped column: not resident, not
    in the budget), ``index`` (a vector index), ``scalar_index`` (a scalar or JSON path index,
    named by the index), ``pk_lookup`` (the primary key -> row lookup), ``json`` (a parsed JSON
    path cache), ``masks`` (filter mask cache) or ``match`` (a text column's TEXT_MATCH /
    PHRASE_MATCH index).
    """

    db: str
    collection: str
    partition: str
    kind: str
    name: str
    nbytes: int


@dataclass(frozen=True)
class MemoryView:
    budget_bytes: int
    used_bytes: int  # resident: what the budget counts (mapped files are not)
    reserved_bytes: int
    blocks: tuple[ResidentBlock, ...]  # mapped files too, as kind "mapped"
    mapped_bytes: int = 0
    # ``serve --workers N``: used bytes by process ("primary", "query worker I"); {} otherwise.
    processes: Mapping[str, int] = field(default_factory=dict)

    @property
    def free_bytes(self) -> int:
        return max(self.budget_bytes - self.used_bytes - self.reserved_bytes, 0)

    def collection_bytes(self, db: str, collection: str) -> int:
        """The collection's resident bytes (its mapped files apart)."""
        return sum(
            b.nbytes for b in self.blocks if b.db == db and b.collection == collection and b.kind != MAPPED
        )


def memory_view(accountant: MemoryAccountant, collections: Mapping[int, Collection]) -> MemoryView:
    ledger = accountant.blocks()
    reserved = accountant.reserved_bytes
    processes = accountant.process_bytes()
    totals: dict[tuple[str, str, str, str, str], int] = {}
    for key, nbytes in ledger.items():
        coll = collections.get(key.collection_id)
        if coll is None:
            continue
        partition = _partition_name(coll, key.partition_id)
        named = (coll.db_name, coll.name, partition, key.kind, key.name)
        totals[named] = totals.get(named, 0) + nbytes
    blocks = tuple(ResidentBlock(*named, nbytes) for named, nbytes in sorted(totals.items()))
    return MemoryView(
        budget_bytes=accountant.budget_bytes,
        # The whole server's: this process's ledger and the other processes' reports.
        used_bytes=sum(processes.values()) or sum(n for key, n in ledger.items() if key.kind != MAPPED),
        reserved_bytes=reserved,
        blocks=blocks,
        mapped_bytes=sum(n for key, n in ledger.items() if key.kind == MAPPED),
        processes=processes,
    )


def _partition_name(coll: Collection, partition_id: int) -> str:
    for name, pid in coll.partitions.items():
        if pid == partition_id:
            return name
    return str(partition_id)
