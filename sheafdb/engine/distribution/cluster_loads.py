"""The cluster writer's load and release: targets and placements in the catalog, never loads here.

In cluster mode the writer holds no segments: a load is checked with the embedded load's
rules (load_plan.py: Milvus's field-list and index checks), then the coordinator persists the
load config and its placement or refuses at once; query workers load what is placed on them
and ack it. Load state, progress and the wait answer from the acks (load_progress.py), and a
release drops the placement. Everything is in the catalog, so a restarted writer (or a proxy,
or a standby) answers the same.

No lock of its own: the coordinator serialises the changes, the catalog the reads.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

from sheafdb.engine.collection import Collection
from sheafdb.engine.distribution.coordinator import Coordinator
from sheafdb.engine.distribution.load_progress import ack_progress
from sheafdb.engine.distribution.loaded_bytes import load_target
from sheafdb.engine.load.load_manager import LoadManager
from sheafdb.engine.load.load_plan import check_indexes, resolve_load_fields
from sheafdb.engine.load.load_requests import partition_id
from sheafdb.engine.load.target import LoadRequest
from sheafdb.engine.models import LoadProgress, LoadState
from sheafdb.errors import CollectionNotLoaded, ParameterInvalid, UnexpectedError
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.records import LoadConfigRecord

# How often a wait for a load looks at the acks again.
WAIT_POLL_S = 0.05

LoadStateOf = Callable[[Collection, tuple[str, ...]], LoadState]


def load_answers(
    cluster: bool, catalog: Catalog, loads: LoadManager
) -> tuple[ClusterLoads | None, LoadStateOf, Callable[[Collection], bool]]:
    """The Engine's loads in cluster mode (None when embedded), and where its parts read the
    load state and "is it loaded" from: the workers' acks, or the embedded load manager."""
    if not cluster:
        return None, loads.state, loads.is_loaded
    answers = ClusterLoads.start(catalog)
    return answers, answers.state, answers.is_loaded


class ClusterLoads:
    def __init__(self, catalog: Catalog, coordinator: Coordinator) -> None:
        self._catalog = catalog
        self.coordinator = coordinator

    @classmethod
    def start(cls, catalog: Catalog) -> ClusterLoads:
        """With its coordinator thread running (the writer closes it)."""
        coordinator = Coordinator(catalog)
        coordinator.start()
        return cls(catalog, coordinator)

    # -- load / release --------------------------------------------------------------------
    def load(self, coll: Collection, request: LoadRequest, resource_groups: Sequence[str]) -> None:
        previous = self._catalog.get_load_config(coll.collection_id)
        if request.refresh:
            if previous is None:
                raise CollectionNotLoaded(f"collection not loaded[collection={coll.collection_id}]")
            self.coordinator.poke()  # new segments (an import) are placed by the next pass
            return
        schema = coll.schema
        partitions = request.partitions
        if partitions is not None:
            if not partitions:
                raise UnexpectedError("failed to load partition, due to no partition specified")
            if schema.partition_key_field is not None:
                raise UnexpectedError("disable load partitions if partition key mode is used")
            for name in partitions:
                partition_id(coll, name)
        fields = resolve_load_fields(schema, request.load_fields, request.skip_load_dynamic_field)
        check_indexes(coll.name, schema, coll.indexes, fields, for_partitions=partitions is not None)
        if previous is not None:
            loaded = resolve_load_fields(schema, previous.load_fields, previous.skip_load_dynamic_field)
            if loaded != fields:
                raise ParameterInvalid(
                    "call query coordinator LoadCollection: can't change the load field list for loaded "
                    f"collection: invalid parameter[expected={list(loaded)}][actual={list(fields)}]"
                )
        names: tuple[str, ...] = ()
        if partitions is not None and not (previous is not None and not previous.partitions):
            names = tuple(dict.fromkeys((*(previous.partitions if previous else ()), *partitions)))
        config = LoadConfigRecord(
            coll.collection_id,
            names,
            request.load_fields,
            request.skip_load_dynamic_field,
            max(request.replica_number, 1),
        )
        self.coordinator.load(config, resource_groups)

    def release(self, coll: Collection) -> int:
        """Drops the placement; the workers give the memory back (0 bytes here)."""
        self.coordinator.release(coll.collection_id)
        return 0

    def release_partitions(self, coll: Collection, partitions: Sequence[str]) -> int:
        if not partitions:
            raise ParameterInvalid("invalid parameter[expected=any partition][actual=empty partition list]")
        for name in partitions:
            partition_id(coll, name)
        previous = self._catalog.get_load_config(coll.collection_id)
        if previous is None:
            return 0
        loaded = previous.partitions or tuple(coll.partitions)
        left = tuple(p for p in loaded if p not in set(partitions))
        if not left:
            self.coordinator.release(coll.collection_id)
        else:
            self.coordinator.set_target(
                LoadConfigRecord(
                    coll.collection_id,
                    left,
                    previous.load_fields,
                    previous.skip_load_dynamic_field,
                    previous.replica_number,
                )
            )
        return 0

    # -- state -----------------------------------------------------------------------------
    def _progress(self, coll: Collection, partitions: Sequence[str]) -> int | None:
        """0..100, or None when (those partitions of) the collection are not loaded."""
        asked = {partition_id(coll, name) for name in partitions}
        config = self._catalog.get_load_config(coll.collection_id)
        if config is None:
            return None
        target = load_target(self._catalog, coll.record, config)
        if not asked <= target.partition_ids:
            return None
        segments = {s for s, p in target.partitions_of.items() if not asked or p in asked}
        replicas = self._catalog.list_replicas(coll.collection_id)
        return ack_progress(
            segments, replicas, self._catalog.list_assignments(collection_id=coll.collection_id)
        )

    def state(self, coll: Collection, partitions: Sequence[str] = ()) -> LoadState:
        progress = self._progress(coll, partitions)
        if progress is None:
            return LoadState.NOT_LOAD
        return LoadState.LOADED if progress == 100 else LoadState.LOADING

    def progress(self, coll: Collection, partitions: Sequence[str] = ()) -> LoadProgress:
        progress = self._progress(coll, partitions)
        if progress is None:
            raise CollectionNotLoaded(f"collection not loaded[collection={coll.collection_id}]")
        return LoadProgress(progress=progress, refresh_progress=progress)

    def wait(self, coll: Collection, partitions: Sequence[str], timeout: float) -> LoadState:
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(coll, partitions)
            if state is not LoadState.LOADING or time.monotonic() >= deadline:
                return state
            time.sleep(WAIT_POLL_S)

    def is_loaded(self, coll: Collection) -> bool:
        return self.state(coll) is LoadState.LOADED

    def loaded_fields(self, coll: Collection) -> tuple[str, ...]:
        config = self._catalog.get_load_config(coll.collection_id)
        if config is None:
            return ()
        return resolve_load_fields(coll.schema, config.load_fields, config.skip_load_dynamic_field)
