"""What the facade's call mixins use of the Engine (built in Engine.__init__)."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from sheafdb.engine.collection import Collection
    from sheafdb.engine.distribution.cluster_loads import ClusterLoads
    from sheafdb.engine.load.load_manager import LoadManager
    from sheafdb.engine.load.load_requests import LoadRequests
    from sheafdb.engine.names import CollectionNames
    from sheafdb.engine.replicas import Replicas
    from sheafdb.engine.write.compaction import CompactionPolicy, Compactor
    from sheafdb.engine.write.data_removal import DataRemoval
    from sheafdb.engine.write.log_following import LogFollowing
    from sheafdb.engine.write.sealing import Sealer
    from sheafdb.engine.write.writes import Writer
    from sheafdb.storage.catalog import Catalog
    from sheafdb.storage.object_store import ObjectStore
    from sheafdb.storage.timestamps import TimestampOracle


class EngineParts:
    """Declarations only: the Engine assigns every one of these before any call."""

    _data_dir: Path
    _catalog: Catalog
    _store: ObjectStore
    _ddl_lock: threading.RLock
    _names: CollectionNames
    _oracle: TimestampOracle
    _loads: LoadManager
    _load_requests: LoadRequests
    _removal: DataRemoval
    # The cluster writer's loads (placements on query workers); None when embedded.
    _cluster: ClusterLoads | None
    replicas: Replicas
    _writer: Writer
    _sealer: Sealer
    _compactor: Compactor
    # The cluster's coordinator following its log owners (log_following.py); None otherwise.
    _following: LogFollowing | None

    def _resolve(
        self, db: str, name: str, partitions: Sequence[str] = (), *, reading: bool = False
    ) -> Collection:
        raise NotImplementedError  # Engine._resolve

    def _compaction_policy(self, min_segments: int) -> CompactionPolicy:
        raise NotImplementedError  # Engine._compaction_policy

    def _caught_up(self, coll: Collection) -> Collection:
        raise NotImplementedError  # WriteCalls._caught_up
