"""The engine's one entry point: what the API layers call.

Every method is synchronous and thread-safe; the gRPC and REST layers call it from their
worker threads. ``db`` is always a resolved database name (``"default"`` when the client gave
none). Collection names may be aliases. Errors are ``sheafdb.errors`` exceptions.

This module reads top-down as the facade: it builds the parts, resolves names, takes the
locks and keeps the rules that need the engine's own state. The calls on databases,
partitions, aliases, loads and writes are its mixins in calls/ (one module each); the bodies of
longer operations live in their own modules (collection_alterations.py, index_ddl.py,
data_removal.py, writes.py, load_requests.py, load_manager.py), which never take
``_ddl_lock`` themselves.

Locks: ``_ddl_lock`` serialises every metadata change (collections, partitions, indexes,
aliases, databases) and guards ``_collections`` and every change to ``_names``; writes and
reads take no engine lock, only the collection's own (see collection.py), and resolve names
through ``_names`` lock-free (names.py: the catalog is the durable truth, ``_names`` is
rebuilt from it at open and changed only together with it under ``_ddl_lock``).
Background threads: index builds (index_builds.py), compaction (auto_compaction.py), load
restores after a start (load_requests.py) and, on the cluster's coordinator, following the
log owners' logs (write/log_following.py).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from contextlib import nullcontext
from datetime import tzinfo
from pathlib import Path

from sheafdb.engine import function_ddl
from sheafdb.engine.analysis import AnalyzedToken, PhraseSlop, phrase_match_slops, run_analyzer
from sheafdb.engine.calls.aliases import AliasCalls
from sheafdb.engine.calls.databases import DatabaseCalls
from sheafdb.engine.calls.loading import LoadCalls
from sheafdb.engine.calls.partitions import PartitionCalls
from sheafdb.engine.calls.writes import WriteCalls
from sheafdb.engine.collection import Collection
from sheafdb.engine.collection_alterations import CollectionAlterations
from sheafdb.engine.config import EngineConfig
from sheafdb.engine.ddl_rules import partition_names, prepare_schema
from sheafdb.engine.distribution.cluster_loads import load_answers
from sheafdb.engine.distribution.cluster_reads import ClusterReads, WorkerClient
from sheafdb.engine.distribution.cluster_replicas import replicas_for
from sheafdb.engine.distribution.writer_reads import WriterReads
from sheafdb.engine.file_resources import FileResources
from sheafdb.engine.imports.jobs import ImportCollaborators, ImportJobs
from sheafdb.engine.index_ddl import IndexDefinitions
from sheafdb.engine.load.load_manager import LoadManager
from sheafdb.engine.load.load_requests import LoadRequests
from sheafdb.engine.load.memory import MemoryAccountant
from sheafdb.engine.load.memory_view import MemoryView, memory_view
from sheafdb.engine.load.residency import ResidencyKeeper, residency_policy
from sheafdb.engine.maintenance import Maintenance
from sheafdb.engine.models import (
    CollectionInfo,
    ConsistencyLevel,
    HybridSearchRequest,
    IndexInfo,
    QueryRequest,
    QueryResult,
    SearchRequest,
    SearchResult,
)
from sheafdb.engine.name_rules import (
    check_collection_name,
    check_database_name,
    check_index_name,
)
from sheafdb.engine.names import CollectionNames
from sheafdb.engine.read.expiry import TTL_FIELD_PROPERTY, check_ttl_properties
from sheafdb.engine.read.row_counts import expired_keys
from sheafdb.engine.read.search_by_keys import with_key_vectors
from sheafdb.engine.snapshot import SealedSegment
from sheafdb.engine.snapshot_export import SnapshotExports
from sheafdb.engine.snapshot_restore import SnapshotRestores
from sheafdb.engine.snapshots import Snapshots, remove_orphan_snapshots
from sheafdb.engine.write.auto_compaction import BackgroundCompactor
from sheafdb.engine.write.compaction import CompactionPolicy, Compactor
from sheafdb.engine.write.compaction_jobs import CompactionJobs
from sheafdb.engine.write.data_removal import DataRemoval
from sheafdb.engine.write.index_builds import IndexBuilder
from sheafdb.engine.write.log_following import log_following_for
from sheafdb.engine.write.orphans import remove_orphans
from sheafdb.engine.write.recovery import open_collection
from sheafdb.engine.write.sealing import Sealer
from sheafdb.engine.write.store_binding import bind_store_to_catalog, require_segment_files
from sheafdb.engine.write.timestamp_source import writer_oracle
from sheafdb.engine.write.writes import Writer
from sheafdb.errors import (
    CollectionNotFound,
    invalid,
)
from sheafdb.schema import CollectionSchema, FieldSchema
from sheafdb.schema_functions import FunctionSchema
from sheafdb.storage.catalog import open_catalog
from sheafdb.storage.change_counter import ChangeCounter, publish_data_changes
from sheafdb.storage.import_files import open_import_files
from sheafdb.storage.log import open_log_store
from sheafdb.storage.object_store import open_object_store
from sheafdb.text.file_resources import install as install_file_resolver
from sheafdb.timestamptz import TIMEZONE_PROPERTY, zone


class Engine(DatabaseCalls, PartitionCalls, AliasCalls, LoadCalls, WriteCalls):
    def __init__(self, config: EngineConfig) -> None:
        self.config = config
        self._data_dir = Path(config.data_dir)
        self._data_dir.mkdir(parents=True, exist_ok=True)
        self._catalog = open_catalog(config.catalog_url, self._data_dir)
        if config.writer_lease is not None:
            self._catalog.set_fence(config.writer_lease, config.on_commit_unknown)
        self._store = open_object_store(config.objects_url, self._data_dir, config.object_cache_bytes)
        self._accountant = MemoryAccountant(config.memory_budget_bytes)
        self._loads = LoadManager(self._accountant, self._store, share_pages=config.share_pages)
        self._ddl_lock = threading.RLock()
        self._changes: ChangeCounter | None = None
        self._collections: dict[int, Collection] = {}
        self._cluster, load_state, is_loaded = load_answers(config.cluster, self._catalog, self._loads)
        # Remote backends may be shared or moved: make sure they are this deployment's before
        # deleting what the catalog does not name (the embedded data dir is one by itself).
        try:
            # The logs go with the catalog: the data dir's files, or the PostgreSQL database.
            self._logs = open_log_store(
                config.catalog_url,
                self._data_dir,
                fsync=config.fsync,
                fence=config.writer_lease,
                on_commit_unknown=config.on_commit_unknown,
            )
            if config.shared_changes:
                self._changes = publish_data_changes(self._data_dir, self._catalog, self._logs)
            if config.objects_url is not None:
                bind_store_to_catalog(self._store, self._catalog)
            elif config.catalog_url is not None:
                require_segment_files(self._store, self._catalog)
        except BaseException:
            self._catalog.close()
            raise
        remove_orphans(self._store, self._catalog, self._logs)
        remove_orphan_snapshots(self._store, self._catalog)
        floor = self._catalog.max_timestamp()
        for record in self._catalog.list_collections():
            recovered = open_collection(record, self._catalog, self._store, self._logs)
            self._collections[record.collection_id] = recovered.collection
            floor = max(floor, recovered.max_timestamp)
        self._oracle = writer_oracle(self._catalog, config.catalog_url, floor)
        self._names = CollectionNames.from_catalog(self._catalog, self._collections)
        self._builder = IndexBuilder(self._store, self._catalog)
        self._background: BackgroundCompactor | None = None  # set last: seals may poke it
        # The cluster's coordinator follows its log owners: they append, it applies.
        following = self._following = log_following_for(
            config, self._logs, self._catalog, self._open_collections
        )
        catch_up = following.catch_up if following is not None else None
        self._sealer = Sealer(self._store, self._catalog, on_sealed=self._after_seal, before_capture=catch_up)
        self._compactor = Compactor(self._store, self._catalog, self._builder)
        clear = following.clear_data if following is not None else Collection.clear_data
        self._removal = DataRemoval(self._store, self._catalog, self._oracle, clear)
        self._alterations = CollectionAlterations(self._catalog, is_loaded, self._oracle.next)
        self._indexes = IndexDefinitions(self._catalog, self._oracle, self._builder, self._removal, is_loaded)
        # Delete by filter and partial upsert read rows: here, or through the query workers.
        self._own_reads = WriterReads(self._loads)
        self._writer = Writer(
            self._oracle,
            self._catalog.allocate_ids,
            config.seal_bytes,
            seal=self._sealer.seal,
            is_loaded=is_loaded,
            query=self._own_reads.query,
            write=following.write if following is not None else Collection.write,
        )
        self._load_requests = LoadRequests(
            self._catalog, self._loads, evict_under_pressure=config.evict_under_pressure
        )
        self._residency = ResidencyKeeper(self._loads.residents, self._load_requests.release_idle)
        # Sub-facades: replicas and resource groups; segments, compaction jobs, flush-all, memory.
        self.replicas = replicas_for(
            self._cluster, self._catalog, self._resolve, self._open_collections, load_state
        )
        self.maintenance = Maintenance(
            accountant=self._accountant,
            resolve=self._resolve,
            collections=self._open_collections,
            load_state=load_state,
            seal=self._sealer.seal,
            next_timestamp=self._oracle.next,
            compactions=CompactionJobs(self._catalog.allocate_id, self._compact_now),
        )
        # Collection snapshots (snapshots.py) and restores from them (snapshot_restore.py).
        self.snapshots = Snapshots(self._catalog, self._store, self._resolve, self._oracle.next)
        self.restores = SnapshotRestores(
            self._catalog,
            self._store,
            self,
            self._resolve,
            on_restored=lambda coll, segments: self._builder.submit(coll, segments, coll.indexes),
            hold=self.snapshots.hold,
        )
        # Exports of snapshots to a directory or key prefix (snapshot_export.py).
        self.exports = SnapshotExports(
            self._catalog,
            self._store,
            SnapshotExports.target_opener(
                config.objects_url, Path(config.import_root or self._data_dir), self._data_dir
            ),
            hold=self.snapshots.hold,
        )
        # Bulk import jobs (the Engine.imports sub-facade): files -> checked rows -> segments.
        server_files = open_import_files(config.objects_url, Path(config.import_root or self._data_dir))
        self.imports = ImportJobs(
            ImportCollaborators(
                files=server_files,
                resolve=self._resolve,
                allocate_id=self._catalog.allocate_id,
                write=self._writer.import_rows,
                seal=self._sealer.seal,
                is_dropped=lambda coll: coll.collection_id not in self._collections,
            )
        )
        # File resources (Milvus 3.0): named files analyzers read, from where imports read.
        self.file_resources = FileResources(
            self._catalog,
            server_files,
            lambda: [(coll.name, coll.schema) for coll in list(self._collections.values())],
        )
        install_file_resolver(self.file_resources)
        # Segments sealed before a crash whose index builds never finished.
        for coll in self._collections.values():
            self._builder.submit(coll, coll.snapshot().sealed, coll.indexes)
        if config.restore_loads and self._cluster is None:
            self._load_requests.restore(self._collections)
        if config.compaction_min_segments is not None:
            self._background = BackgroundCompactor(
                self._compactor,
                self._open_collections,
                policy=self._compaction_policy(config.compaction_min_segments),
                interval=config.compaction_interval_s,
                idle_s=config.compaction_interval_s,
            )
        if following is not None:
            following.start(self._sealer.seal, config.seal_bytes)
        # Last: a resumed restore job may call back into the facade, which must be whole.
        self.restores.resume()
        self.exports.resume()

    def close(self) -> None:
        """Finish in-flight writes, close the write-ahead logs, stop background work."""
        # No merge starts or goes on past its current step; then the builder, which cancels
        # the build a merge may be waiting on: the compaction thread ends promptly instead of
        # after a build of minutes.
        if self._following is not None:
            self._following.close()
        self.imports.close()
        self._compactor.stop()
        self.restores.close()
        self.exports.close()
        self._residency.close()
        if self._cluster is not None:
            self._cluster.coordinator.close()
        self._own_reads.close()
        self._loads.close()
        self._builder.close()
        if self._background is not None:
            self._background.close()
        with self._ddl_lock:
            for coll in self._collections.values():
                coll.wal.close()
        self._logs.close()
        self._catalog.close()
        if self._changes is not None:
            self._changes.close()

    def read_through_workers(self, client: WorkerClient) -> None:
        """Cluster mode: the write path's own reads go to the query workers (writer_reads.py)."""
        self._own_reads.attach(ClusterReads(self._catalog, client))

    # -- helpers ----------------------------------------------------------------------------
    def _after_seal(self, coll: Collection, segments: tuple[SealedSegment, ...]) -> None:
        self._builder.submit(coll, segments, coll.indexes)
        if self._background is not None:
            self._background.poke()

    def _compaction_policy(self, min_segments: int) -> CompactionPolicy:
        return CompactionPolicy(self.config.seal_bytes, self.config.segment_target_bytes, min_segments)

    def _open_collections(self) -> list[Collection]:
        with self._ddl_lock:
            return list(self._collections.values())

    def _resolve(
        self, db: str, name: str, partitions: Sequence[str] = (), *, reading: bool = False
    ) -> Collection:
        """Milvus's name checks, then a dict lookup (names.py): no catalog read on the request path."""
        return self._names.resolve_checked(db, name, partitions, reading=reading)

    # -- collections ------------------------------------------------------------------------
    def create_collection(
        self,
        db: str,
        name: str,
        schema: CollectionSchema,
        *,
        consistency_level: ConsistencyLevel = ConsistencyLevel.BOUNDED,
        num_partitions: int = 0,
        shards_num: int = 1,
        properties: Mapping[str, str] | None = None,
    ) -> None:
        """Field ids are assigned here (100, 101, ... like Milvus). Same name and same schema
        again is a no-op success; a different schema is ParameterInvalid."""
        check_collection_name(name)
        residency_policy(properties or {})  # a wrong policy value is refused before anything
        prepared = prepare_schema(schema, name)
        check_ttl_properties(prepared, properties or {})
        partitions = partition_names(prepared, num_partitions)
        with self._ddl_lock:
            self._catalog.get_database(db)
            try:
                existing = self._catalog.get_collection(db, name)
            except CollectionNotFound:
                existing = None
            if existing is not None:
                if existing.schema.to_dict() == prepared.to_dict():
                    return
                raise invalid(f"create duplicate collection with different parameters, collection: {name}")
            self.file_resources.require_named(prepared.fields)
            record = self._catalog.create_collection(
                db,
                name,
                prepared,
                partition_names=partitions,
                properties=dict(properties or {}),
                consistency_level=int(consistency_level),
                shards_num=shards_num or 1,
                created_ts=self._oracle.next(),
            )
            cid = record.collection_id
            parts = {p.name: p.partition_id for p in self._catalog.list_partitions(cid)}
            wal = self._logs.create(cid)
            coll = Collection(record, parts, (), wal)
            self._collections[cid] = coll
            self._names.add_collection(coll)

    def drop_collection(self, db: str, name: str) -> None:
        check_collection_name(name)
        with self._ddl_lock:
            if self._names.alias_target(db, name) is not None:
                raise invalid(f"cannot drop the collection via alias = {name}")
            try:
                coll = self._resolve(db, name)
            except CollectionNotFound:
                return  # Milvus: dropping a missing collection succeeds
            # Cluster mode: the log lease first, so its owner appends nothing after (log_following.py).
            with self._following.dropping(coll) if self._following is not None else nullcontext():
                self._loads.forget(coll)
                # Out of the name map first, so requests arriving while its files go find nothing;
                # if the removal fails part way, the map is rebuilt from what the catalog kept.
                self._names.drop_collection(coll)
                try:
                    self._removal.drop_collection(coll, self._logs)
                except BaseException:
                    self._names = CollectionNames.from_catalog(self._catalog, self._collections)
                    raise
            del self._collections[coll.collection_id]

    def has_collection(self, db: str, name: str) -> bool:
        try:
            self._resolve(db, name)
        except CollectionNotFound:
            return False
        return True

    def describe_collection(self, db: str, name: str) -> CollectionInfo:
        coll = self._resolve(db, name)
        return CollectionInfo.of(
            coll.record,
            num_partitions=len(coll.partitions),
            aliases=self._names.aliases_of(coll),
            updated_timestamp=coll.updated_ts,
        )

    def output_zone(self, db: str, name: str, asked: str = "") -> tzinfo:
        """The zone TIMESTAMPTZ values are returned in: the request's, else the collection's
        ``timezone`` property, else UTC."""
        properties = self._resolve(db, name).record.properties
        try:
            return zone(asked or properties.get(TIMEZONE_PROPERTY))
        except ValueError as e:
            raise invalid(str(e)) from None

    def collection_schema(self, db: str, name: str) -> CollectionSchema:
        """The schema alone, for typing a request's or a reply's columns: a dict lookup."""
        return self._resolve(db, name).schema

    def list_collections(self, db: str) -> list[str]:
        self._catalog.get_database(db)
        return [r.name for r in self._catalog.list_collections(db)]

    def rename_collection(self, db: str, old_name: str, new_name: str, new_db: str | None = None) -> None:
        check_collection_name(old_name)
        check_collection_name(new_name)
        if new_db:
            check_database_name(new_db)
        with self._ddl_lock:
            coll = self._resolve(db, old_name)
            if (new_db or db) != coll.db_name and self._names.aliases_of(coll):
                raise invalid(
                    "fail to rename db name, must drop all aliases of this collection before rename"
                )
            record = self._catalog.rename_collection(coll.collection_id, new_db or db, new_name)
            coll.set_record(record)
            self._names.rename_collection(coll)

    def truncate_collection(self, db: str, name: str) -> None:
        with self._ddl_lock:
            self._removal.truncate(self._resolve(db, name))

    def alter_collection_properties(self, db: str, name: str, properties: Mapping[str, str]) -> None:
        with self._ddl_lock:
            self._alterations.alter_properties(self._resolve(db, name), properties)

    def drop_collection_properties(self, db: str, name: str, keys: Sequence[str]) -> None:
        """Dropping ``ttl_field`` does not bring expired rows back (Milvus): they are deleted."""
        with self._ddl_lock:
            coll = self._resolve(db, name)
            expired = expired_keys(self._store, self._caught_up(coll)) if TTL_FIELD_PROPERTY in keys else None
            self._alterations.drop_properties(coll, keys)
            if expired is not None and len(expired):
                self._writer.delete_keys(coll, expired)

    def alter_collection_field(self, db: str, name: str, field_name: str, params: Mapping[str, str]) -> None:
        with self._ddl_lock:
            self._alterations.alter_field(self._resolve(db, name), field_name, params)

    def add_collection_field(self, db: str, name: str, field: FieldSchema) -> None:
        with self._ddl_lock:
            self.file_resources.require_named([field])
            self._alterations.add_field(self._resolve(db, name), field)

    def remove_file_resource(self, name: str) -> None:
        with self._ddl_lock:  # ordered against collection creation (FileResources.require_named)
            self.file_resources.remove(name)

    def run_analyzer(
        self, db: str, texts: Sequence[str], params: str, collection: str = "", field_name: str = ""
    ) -> list[list[AnalyzedToken]]:
        schema = self._resolve(db, collection).schema if collection else None
        return run_analyzer(texts, params, schema, field_name)

    def compute_phrase_match_slop(self, params: str, query: str, texts: Sequence[str]) -> list[PhraseSlop]:
        return phrase_match_slops(params, query, texts)

    # Functions after create: Milvus 2.6's refusals (function_ddl.py); none changes the schema.
    def add_collection_function(self, db: str, name: str, function: FunctionSchema | None) -> None:
        function_ddl.check_add(lambda: self._resolve(db, name), function)

    def alter_collection_function(
        self, db: str, name: str, function_name: str, function: FunctionSchema | None
    ) -> None:
        function_ddl.check_alter(lambda: self._resolve(db, name), function_name, function)

    def drop_collection_function(self, db: str, name: str, function_name: str) -> None:
        function_ddl.check_drop(lambda: self._resolve(db, name), function_name)

    # -- indexes (index_ddl.py) -------------------------------------------------------------
    def create_index(
        self, db: str, collection: str, field_name: str, index_name: str, params: Mapping[str, str]
    ) -> None:
        """``index_name`` empty: named after the field. Builds run in the background."""
        check_collection_name(collection)
        check_index_name(index_name)
        with self._ddl_lock:
            coll = self._resolve(db, collection)
            needs_build = self._indexes.create(coll, field_name, index_name, params)
        if needs_build:
            self._builder.submit(coll, coll.snapshot().sealed, coll.indexes)

    def describe_indexes(
        self, db: str, collection: str, index_name: str = "", field_name: str = ""
    ) -> list[IndexInfo]:
        """All indexes (filtered by name / field when given); IndexNotFound when none match."""
        return self._indexes.describe(self._resolve(db, collection), index_name, field_name)

    def drop_index(self, db: str, collection: str, index_name: str, field_name: str = "") -> None:
        with self._ddl_lock:
            self._indexes.drop(self._resolve(db, collection), index_name, field_name)

    def alter_index(
        self,
        db: str,
        collection: str,
        index_name: str,
        params: Mapping[str, str],
        delete_keys: Sequence[str] = (),
    ) -> None:
        with self._ddl_lock:
            self._indexes.alter(self._resolve(db, collection), index_name, params, delete_keys)

    # -- writes: calls/writes.py ------------------------------------------------------------
    def allocate_timestamp(self) -> int:
        """A read reply's timestamp: at or above every one this process stamped a write with,
        never a round trip to the catalog (timestamps.py: ``read_stamp``)."""
        return self._oracle.read_stamp()

    def issue_timestamp(self) -> int:
        """AllocTimestamp: a fresh timestamp, above every one issued before (and, with a
        PostgreSQL catalog, by any writer process on it)."""
        return self._oracle.next()

    def wait_for_index_builds(self, timeout: float | None = None) -> bool:
        """Block until no index build is queued or running (tests, benchmarks)."""
        return self._builder.wait_idle(timeout)

    def wait_for_loads(self, timeout: float | None = None) -> bool:
        """Block until the loader has nothing queued or running (tests, benchmarks)."""
        return self._loads.loader.wait_idle(timeout)

    # -- reads ------------------------------------------------------------------------------
    def search(self, db: str, request: SearchRequest) -> SearchResult:
        coll = self._resolve(db, request.collection, request.partition_names, reading=True)
        if request.ids is not None:
            request = with_key_vectors(coll.schema, request, lambda get: self._loads.query(coll, get))
        return self._loads.search(coll, request)

    def hybrid_search(self, db: str, request: HybridSearchRequest) -> SearchResult:
        coll = self._resolve(db, request.collection, request.partition_names, reading=True)
        return self._loads.hybrid_search(coll, request)

    def query(self, db: str, request: QueryRequest) -> QueryResult:
        coll = self._resolve(db, request.collection, request.partition_names, reading=True)
        return self._loads.query(coll, request)

    # -- introspection ----------------------------------------------------------------------
    def memory_report(self) -> Mapping[str, object]:
        """The memory accountant's view: bytes per collection, partition, field, index."""
        return self._loads.memory_report()

    def set_process_bytes(self, name: str, nbytes: int | None) -> None:
        """Another process of this server (a query worker) holds ``nbytes`` of the budget."""
        self._accountant.set_process_bytes(name, nbytes)

    def memory_view(self) -> MemoryView:
        """The accountant's blocks by database, collection, partition, kind and field name."""
        return memory_view(self._accountant, {c.collection_id: c for c in self._open_collections()})
