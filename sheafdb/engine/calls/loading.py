"""Engine calls that load and release (load_requests.py does the work): load a collection or
partitions, release, preview a load, the load state, progress and the shared wait.

In cluster mode (``_cluster``) the writer places loads on query workers instead
(engine/distribution/cluster_loads.py) and answers their state from the workers' acks."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from sheafdb.engine.calls.parts import EngineParts
from sheafdb.engine.load.load_preview import LoadPreview, preview_load
from sheafdb.engine.load.target import LoadRequest
from sheafdb.engine.models import LoadProgress, LoadState
from sheafdb.errors import CollectionNotFound

log = logging.getLogger(__name__)


class LoadCalls(EngineParts):
    def load_collection(
        self,
        db: str,
        collection: str,
        *,
        load_fields: Sequence[str] = (),
        skip_load_dynamic_field: bool = False,
        replica_number: int = 1,
        refresh: bool = False,
        resource_groups: Sequence[str] = (),
    ) -> None:
        """Validate and start a background load; returns once it is accepted (after a short wait
        for the job, so that a small load is already Loaded when the client first asks)."""
        coll = self._resolve(db, collection)
        group = self.replicas.admit_load(coll, replica_number, resource_groups, refresh=refresh)
        request = LoadRequest(None, tuple(load_fields), skip_load_dynamic_field, replica_number, refresh)
        if self._cluster is not None:
            self._cluster.load(coll, request, resource_groups)
            return
        self._load_requests.load_collection(coll, request)
        self.replicas.place(coll, group)

    def load_partitions(
        self,
        db: str,
        collection: str,
        partitions: Sequence[str],
        *,
        load_fields: Sequence[str] = (),
        skip_load_dynamic_field: bool = False,
        replica_number: int = 1,
        refresh: bool = False,
        resource_groups: Sequence[str] = (),
    ) -> None:
        coll = self._resolve(db, collection, partitions)
        group = self.replicas.admit_load(coll, replica_number, resource_groups, refresh=refresh)
        request = LoadRequest(
            tuple(partitions), tuple(load_fields), skip_load_dynamic_field, replica_number, refresh
        )
        if self._cluster is not None:
            self._cluster.load(coll, request, resource_groups)
            return
        self._load_requests.load_partitions(coll, request)
        self.replicas.place(coll, group)

    def release_collection(self, db: str, collection: str) -> int:
        """Returns the bytes given back."""
        coll = self._resolve(db, collection)
        if self._cluster is not None:
            return self._cluster.release(coll)
        freed = self._load_requests.release_collection(coll)
        log.info("released collection %s.%s: freed %d bytes", coll.db_name, coll.name, freed)
        return freed

    def release_partitions(self, db: str, collection: str, partitions: Sequence[str]) -> int:
        coll = self._resolve(db, collection, partitions)
        if self._cluster is not None:
            return self._cluster.release_partitions(coll, partitions)
        return self._load_requests.release_partitions(coll, partitions)

    def preview_load(
        self,
        db: str,
        collection: str,
        *,
        partitions: Sequence[str] = (),
        load_fields: Sequence[str] = (),
        skip_load_dynamic_field: bool = False,
    ) -> LoadPreview:
        """What loading would add, per field and index, and whether it fits: nothing is loaded."""
        return preview_load(
            self._resolve(db, collection),
            self._loads,
            partitions=partitions,
            load_fields=load_fields,
            skip_load_dynamic_field=skip_load_dynamic_field,
        )

    def get_load_state(self, db: str, collection: str, partitions: Sequence[str] = ()) -> LoadState:
        try:
            coll = self._resolve(db, collection)
        except CollectionNotFound:
            return LoadState.NOT_EXIST
        if self._cluster is not None:
            return self._cluster.state(coll, partitions)
        return self._load_requests.state(coll, partitions)

    def loaded_fields(self, db: str, collection: str) -> tuple[str, ...]:
        """The fields loaded (or loading) now; () when nothing is."""
        if self._cluster is not None:
            return self._cluster.loaded_fields(self._resolve(db, collection))
        return self._loads.loaded_fields(self._resolve(db, collection))

    def wait_for_load(
        self, db: str, collection: str, partitions: Sequence[str] = (), timeout: float = 0.0
    ) -> LoadState:
        """The load state once it is no longer Loading (a load finished or failed), or at the
        timeout: REST's wait after a load and gRPC's short one share it."""
        try:
            coll = self._resolve(db, collection)
        except CollectionNotFound:
            return LoadState.NOT_EXIST
        if self._cluster is not None:
            return self._cluster.wait(coll, partitions, timeout)
        return self._load_requests.wait(coll, partitions, timeout)

    def get_loading_progress(self, db: str, collection: str, partitions: Sequence[str] = ()) -> LoadProgress:
        if self._cluster is not None:
            return self._cluster.progress(self._resolve(db, collection), partitions)
        return self._load_requests.progress(self._resolve(db, collection), partitions)
