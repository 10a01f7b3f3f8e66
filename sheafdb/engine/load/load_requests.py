"""Load and release requests as the facade receives them: check the names, hand the work to
the load manager, and keep the catalog's persisted load config (what a restart reloads) in step.

Stateless apart from its collaborators (both thread-safe): no lock of its own.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace

from sheafdb.engine.collection import Collection
from sheafdb.engine.load.load_manager import LoadManager
from sheafdb.engine.load.residency import eviction_order, policy_of
from sheafdb.engine.load.target import LoadRequest
from sheafdb.engine.models import LoadProgress, LoadState
from sheafdb.errors import MemoryLimitExceeded, ParameterInvalid, PartitionNotFound, SheafError
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.records import LoadConfigRecord

log = logging.getLogger(__name__)


def partition_id(coll: Collection, partition: str) -> int:
    pid = coll.partitions.get(partition)
    if pid is None:
        raise PartitionNotFound(f"partition not found[partition={partition}]")
    return pid


class LoadRequests:
    def __init__(self, catalog: Catalog, loads: LoadManager, *, evict_under_pressure: bool = False) -> None:
        self._catalog = catalog
        self._loads = loads
        self._evict = evict_under_pressure

    def _load_making_room(self, coll: Collection, request: LoadRequest) -> None:
        """Load; with --evict-under-pressure a load that does not fit first releases other
        loaded, unpinned collections (residency.eviction_order) until it fits."""
        try:
            self._loads.load(coll, request)
            return
        except MemoryLimitExceeded as refused:
            candidates = eviction_order([r for r in self._loads.residents() if r.collection is not coll])
            if not self._evict or not candidates:
                raise
            last = refused
        released: list[str] = []
        for resident in candidates:
            freed = self._loads.release_by_policy(resident.collection)
            released.append(f"{resident.collection.name} ({freed} bytes)")
            try:
                self._loads.load(coll, request)
            except MemoryLimitExceeded as still:
                last = still
                continue
            log.info("to load collection %s, released under pressure: %s", coll.name, ", ".join(released))
            return
        raise MemoryLimitExceeded(
            f"{last.message}; released under pressure to no avail: {', '.join(released)}"
        )

    def release_idle(self, coll: Collection) -> None:
        """The residency keeper's release of a collection idle past its policy."""
        freed = self._loads.release_by_policy(coll)
        if not policy_of(coll.record.properties).reload_on_read:
            self._catalog.clear_load_config(coll.collection_id)  # as a user's release would
        log.info("released idle collection %s: %d bytes freed", coll.name, freed)

    def restore(self, collections: dict[int, Collection]) -> None:
        """Ask again, in the background, for what was loaded before the restart."""
        for config in self._catalog.list_load_configs():
            coll = collections.get(config.collection_id)
            if coll is None:
                continue
            try:
                self._loads.load(coll, LoadRequest.from_record(config), wait_s=0)
            except SheafError:
                log.exception("could not restore the load of collection %s", coll.name)

    def load_collection(self, coll: Collection, request: LoadRequest) -> None:
        self._load_making_room(coll, request)
        if not request.refresh:
            self._catalog.set_load_config(request.record(coll.collection_id))

    def load_partitions(self, coll: Collection, request: LoadRequest) -> None:
        partitions = request.partitions or ()
        for name in partitions:
            partition_id(coll, name)
        self._load_making_room(coll, request)
        previous = self._catalog.get_load_config(coll.collection_id)
        if previous is not None and not previous.partitions:
            return  # the whole collection is already the persisted load
        names = tuple(dict.fromkeys((*(previous.partitions if previous else ()), *partitions)))
        self._catalog.set_load_config(replace(request, partitions=names).record(coll.collection_id))

    def release_collection(self, coll: Collection) -> int:
        freed = self._loads.release(coll)
        self._catalog.clear_load_config(coll.collection_id)
        log.info("released collection %s: %d bytes freed", coll.name, freed)
        return freed

    def release_partitions(self, coll: Collection, partitions: Sequence[str]) -> int:
        if not partitions:
            raise ParameterInvalid("invalid parameter[expected=any partition][actual=empty partition list]")
        for name in partitions:
            partition_id(coll, name)
        freed = self._loads.release(coll, tuple(partitions))
        previous = self._catalog.get_load_config(coll.collection_id)
        if previous is not None:
            loaded = previous.partitions or tuple(coll.partitions)
            left = tuple(p for p in loaded if p not in set(partitions))
            if left:
                self._catalog.set_load_config(
                    LoadConfigRecord(
                        coll.collection_id,
                        left,
                        previous.load_fields,
                        previous.skip_load_dynamic_field,
                        previous.replica_number,
                    )
                )
            else:
                self._catalog.clear_load_config(coll.collection_id)
        return freed

    def state(self, coll: Collection, partitions: Sequence[str]) -> LoadState:
        for name in partitions:
            partition_id(coll, name)
        return self._loads.state(coll, tuple(partitions))

    def progress(self, coll: Collection, partitions: Sequence[str]) -> LoadProgress:
        for name in partitions:
            partition_id(coll, name)
        return self._loads.progress(coll, tuple(partitions))

    def wait(self, coll: Collection, partitions: Sequence[str], timeout: float) -> LoadState:
        """The load state once no longer Loading, or at the timeout."""
        for name in partitions:
            partition_id(coll, name)
        return self._loads.wait(coll, tuple(partitions), timeout)
