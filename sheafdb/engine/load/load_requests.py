"""Load and release requests as the facade receives them: check the names, hand the work to
the load manager, and keep the catalog's persisted load config (what a restart reloads) in step.

Stateless apart from its collaborators (both thread-safe): no lock of its own.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence

from sheafdb.engine.collection import Collection
from sheafdb.engine.load.load_manager import LoadManager
from sheafdb.engine.models import LoadProgress, LoadState
from sheafdb.errors import ParameterInvalid, PartitionNotFound, SheafError
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.records import LoadConfigRecord

log = logging.getLogger(__name__)


def partition_id(coll: Collection, partition: str) -> int:
    pid = coll.partitions.get(partition)
    if pid is None:
        raise PartitionNotFound(f"partition not found[partition={partition}]")
    return pid


class LoadRequests:
    def __init__(self, catalog: Catalog, loads: LoadManager) -> None:
        self._catalog = catalog
        self._loads = loads

    def restore(self, collections: dict[int, Collection]) -> None:
        """Reload, in the background, what was loaded before the restart."""
        for config in self._catalog.list_load_configs():
            coll = collections.get(config.collection_id)
            if coll is not None:
                threading.Thread(
                    target=self._restore_one,
                    args=(coll, config),
                    daemon=True,
                    name=f"restore-load-{coll.collection_id}",
                ).start()

    def _restore_one(self, coll: Collection, config: LoadConfigRecord) -> None:
        try:
            self._loads.load(
                coll,
                partitions=config.partitions or None,
                load_fields=config.load_fields,
                skip_load_dynamic_field=config.skip_load_dynamic_field,
                replica_number=config.replica_number,
                refresh=False,
            )
        except SheafError:
            log.exception("could not restore the load of collection %s", coll.name)

    def load_collection(
        self,
        coll: Collection,
        *,
        load_fields: Sequence[str],
        skip_load_dynamic_field: bool,
        replica_number: int,
        refresh: bool,
    ) -> None:
        self._loads.load(
            coll,
            partitions=None,
            load_fields=tuple(load_fields),
            skip_load_dynamic_field=skip_load_dynamic_field,
            replica_number=replica_number,
            refresh=refresh,
        )
        if not refresh:
            self._catalog.set_load_config(
                LoadConfigRecord(
                    coll.collection_id,
                    (),
                    tuple(load_fields),
                    skip_load_dynamic_field,
                    max(replica_number, 1),
                )
            )

    def load_partitions(
        self,
        coll: Collection,
        partitions: Sequence[str],
        *,
        load_fields: Sequence[str],
        skip_load_dynamic_field: bool,
        replica_number: int,
        refresh: bool,
    ) -> None:
        for name in partitions:
            partition_id(coll, name)
        self._loads.load(
            coll,
            partitions=tuple(partitions),
            load_fields=tuple(load_fields),
            skip_load_dynamic_field=skip_load_dynamic_field,
            replica_number=replica_number,
            refresh=refresh,
        )
        previous = self._catalog.get_load_config(coll.collection_id)
        if previous is not None and not previous.partitions:
            return  # the whole collection is already the persisted load
        names = tuple(dict.fromkeys((*(previous.partitions if previous else ()), *partitions)))
        self._catalog.set_load_config(
            LoadConfigRecord(
                coll.collection_id, names, tuple(load_fields), skip_load_dynamic_field, max(replica_number, 1)
            )
        )

    def release_collection(self, coll: Collection) -> int:
        freed = self._loads.release(coll)
        self._catalog.clear_load_config(coll.collection_id)
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
