"""SqlCatalog: the catalog's logic, once, in the SQL that SQLite and PostgreSQL share.

``SqlCatalog`` keeps the Catalog (see ``catalog.py``) in the relational tables of
``catalog_tables.py`` through one connection. It is written once, in the SQL that SQLite and
PostgreSQL share (``?`` placeholders, ``INSERT ... ON CONFLICT``); a backend gives the
connection and how a transaction begins (``SqliteCatalog`` in sqlite_catalog.py: one SQLite
file; ``PostgresCatalog`` in postgres_catalog.py). Every public method is one transaction, so a crash
never leaves half a collection, and a failed call leaves nothing behind. Ids come from one
counter, so they are unique across the whole catalog and never reused, even after a restart.

The catalog raises the errors it is the one to know (not found, name taken); whether a
repeated create is an idempotent success is the engine's decision.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from sheafdb.errors import (
    AliasAlreadyExists,
    AliasCollectionNameConflict,
    AliasNotFound,
    CollectionNotFound,
    DatabaseNotFound,
    IndexNotFound,
    PartitionNotFound,
    UnexpectedError,
    WriterFenced,
    invalid,
)
from sheafdb.schema import CollectionSchema
from sheafdb.storage.allocator_rows import AllocatorRows
from sheafdb.storage.catalog_tables import (
    COLLECTION_COLUMNS,
    SEGMENT_COLUMNS,
    Row,
    collection_from_row,
    database_from_row,
    dumps,
    index_from_row,
    load_config_from_row,
    segment_from_row,
)
from sheafdb.storage.cluster_secret_rows import ClusterSecretRows
from sheafdb.storage.file_resource_rows import FileResourceRows
from sheafdb.storage.lease_rows import CommitListener, Lease, LeaseRows
from sheafdb.storage.placement_rows import PlacementRows
from sheafdb.storage.records import (
    DEFAULT_DATABASE,
    AliasRecord,
    CollectionRecord,
    DatabaseRecord,
    DroppedData,
    IndexRecord,
    LoadConfigRecord,
    PartitionRecord,
    SegmentIndexRecord,
    SegmentRecord,
)
from sheafdb.storage.resource_group_rows import ResourceGroupRows
from sheafdb.storage.segment_rows import SegmentRows
from sheafdb.storage.snapshot_rows import SnapshotRows
from sheafdb.storage.timestamps import compose


class SqlCursor(Protocol):
    """The DB-API cursor calls the catalog makes, with ``?`` placeholders."""

    @property
    def rowcount(self) -> int: ...
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def executemany(self, sql: str, params: Iterable[Sequence[Any]]) -> Any: ...
    def fetchone(self) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...


# Milvus gives the default database id 1; every other id comes from the counter.
DEFAULT_DATABASE_ID = 1


class SqlCatalog(
    SegmentRows,
    ResourceGroupRows,
    SnapshotRows,
    FileResourceRows,
    PlacementRows,
    ClusterSecretRows,
    LeaseRows,
    AllocatorRows,
):
    """A Catalog in SQL tables, through one connection a backend opens.

    Lock: ``_lock`` serialises every use of the single connection. One connection (rather
    than one per thread) because catalog calls are short DDL-rate operations (and SQLite
    allows one writer at a time anyway), and a single connection makes "every method is one
    transaction" trivially true: no other thread can interleave statements inside it.
    Statements that read and then write a counter take the row lock first (an UPDATE), so
    two processes sharing a PostgreSQL catalog never hand out the same id.
    """

    # How a write transaction begins.
    begin_statement = "BEGIN"
    # How the fence check keeps the lease row as it read it until commit (PostgreSQL: FOR
    # SHARE, so a takeover waits for this transaction; SQLite's BEGIN IMMEDIATE already does).
    fence_lock_clause = ""
    # The writer lease every write transaction checks (``set_fence``); None: unfenced.
    _fence: Lease | None = None
    # The driver's error for a violated constraint (a foreign key, a unique key).
    integrity_error: type[Exception]

    def __init__(self, tables: str | None) -> None:
        """``tables``: the schema to create if missing; None for a reader that only reads."""
        self._lock = threading.Lock()
        if tables is None:
            return
        # Bookkeeping: the tables (and the counter it would bump) may not exist yet.
        with self._tx(bookkeeping=True) as cur:
            # Statement by statement: executescript would commit in the middle of our transaction.
            for statement in tables.split(";"):
                if statement.strip():
                    cur.execute(statement)
            cur.execute(
                "INSERT INTO meta VALUES ('next_id', 0), ('max_ts', 0), ('identity', ?), ('version', 0) "
                "ON CONFLICT DO NOTHING",
                (secrets.randbits(62),),
            )
            cur.execute(
                "INSERT INTO databases VALUES (?, ?, '{}', 0) ON CONFLICT DO NOTHING",
                (DEFAULT_DATABASE_ID, DEFAULT_DATABASE),
            )

    def _cursor(self) -> SqlCursor:
        raise NotImplementedError

    def _close_connection(self) -> None:
        raise NotImplementedError

    @contextmanager
    def _tx(self, *, bookkeeping: bool = False) -> Iterator[SqlCursor]:
        """One write transaction under the lock; any exception rolls everything back.

        It first bumps the change counter followers poll (``change_counter``) and checks the
        writer's fence (``set_fence``). ``bookkeeping``: a lease's renewal (or a heartbeat),
        which neither changes what followers read nor is the writer's to fence."""
        with self._lock:
            cur = self._cursor()
            cur.execute(self.begin_statement)
            try:
                if not bookkeeping:
                    self._fence_and_count(cur)
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def _fence_and_count(self, cur: SqlCursor) -> None:
        fence = self._fence
        if fence is not None:
            row = cur.execute(
                "SELECT token FROM leases WHERE name = ?" + self.fence_lock_clause, (fence.name,)
            ).fetchone()
            if row is None or int(row[0]) != fence.token:
                raise WriterFenced.lost(fence.name, fence.token)
        cur.execute("UPDATE meta SET value = value + 1 WHERE key = 'version'")

    def set_fence(self, lease: Lease, on_commit_unknown: CommitListener | None = None) -> None:
        """Fence every later write by ``lease``: once another writer took the lease over
        (token + 1), each write transaction raises WriterFenced and commits nothing.
        ``on_commit_unknown``: told of a write whose COMMIT went unanswered (PostgreSQL only:
        SQLite's commits are local, never of unknown outcome)."""
        with self._lock:
            self._fence = lease

    def change_counter(self) -> int:
        """A number that differs after anyone committed a change to the catalog (followers
        read it before each read to know when to take the catalog again)."""
        with self._read() as cur:
            return int(cur.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()[0])

    @contextmanager
    def _read(self) -> Iterator[SqlCursor]:
        with self._lock:
            yield self._cursor()

    def close(self) -> None:
        with self._lock:
            self._close_connection()

    # -- ids and timestamps -----------------------------------------------------------------
    def _allocate(self, cur: SqlCursor, count: int) -> range:
        # Ids start near the current hybrid timestamp so they look like Milvus's (TSO-based).
        floor = compose(int(time.time() * 1000), 0)
        cur.execute(
            "UPDATE meta SET value = CASE WHEN value > ? THEN value ELSE ? END + ? WHERE key = 'next_id'",
            (floor, floor, count),
        )
        (end,) = cur.execute("SELECT value FROM meta WHERE key = 'next_id'").fetchone()
        return range(end - count, end)

    def allocate_id(self) -> int:
        return self.allocate_ids(1)[0]

    def allocate_ids(self, count: int) -> range:
        # Bookkeeping: a reserved block changes nothing a reader sees (so followers need not
        # take the catalog again), and any writer process may reserve one (a deposed one
        # cannot append what it numbers: its block is merely skipped).
        with self._tx(bookkeeping=True) as cur:
            return self._allocate(cur, count)

    @staticmethod
    def _note_ts(cur: SqlCursor, ts: int) -> None:
        cur.execute("UPDATE meta SET value = ? WHERE key = 'max_ts' AND value < ?", (ts, ts))

    def note_timestamp(self, ts: int) -> None:
        """Persist ``ts`` as issued, so the oracle's floor after a restart is above it."""
        with self._tx() as cur:
            self._note_ts(cur, ts)

    def max_timestamp(self) -> int:
        with self._read() as cur:
            return int(cur.execute("SELECT value FROM meta WHERE key = 'max_ts'").fetchone()[0])

    def identity(self) -> int:
        with self._read() as cur:
            return int(cur.execute("SELECT value FROM meta WHERE key = 'identity'").fetchone()[0])

    # -- databases --------------------------------------------------------------------------
    @staticmethod
    def _database_row(cur: SqlCursor, name: str) -> Row:
        row: Row | None = cur.execute("SELECT * FROM databases WHERE name = ?", (name,)).fetchone()
        if row is None:
            raise DatabaseNotFound(f"database not found[database={name}]")
        return row

    def create_database(self, name: str, properties: Mapping[str, str], created_ts: int) -> DatabaseRecord:
        with self._tx() as cur:
            if cur.execute("SELECT 1 FROM databases WHERE name = ?", (name,)).fetchone():
                raise invalid(f"database already exist: {name}")
            (database_id,) = self._allocate(cur, 1)
            cur.execute(
                "INSERT INTO databases VALUES (?, ?, ?, ?)",
                (database_id, name, dumps(dict(properties)), created_ts),
            )
            self._note_ts(cur, created_ts)
            return DatabaseRecord(database_id, name, dict(properties), created_ts)

    def drop_database(self, name: str) -> None:
        with self._tx() as cur:
            if name == DEFAULT_DATABASE:
                raise invalid("can not drop default database")
            self._database_row(cur, name)
            if cur.execute("SELECT 1 FROM collections WHERE db_name = ? LIMIT 1", (name,)).fetchone():
                raise UnexpectedError(
                    f"database:{name} not empty, must drop all collections before drop database"
                )
            cur.execute("DELETE FROM aliases WHERE db_name = ?", (name,))
            cur.execute("DELETE FROM databases WHERE name = ?", (name,))

    def get_database(self, name: str) -> DatabaseRecord:
        with self._read() as cur:
            return database_from_row(self._database_row(cur, name))

    def list_databases(self) -> list[DatabaseRecord]:
        with self._read() as cur:
            return [database_from_row(r) for r in cur.execute("SELECT * FROM databases ORDER BY database_id")]

    def set_database_properties(self, name: str, properties: Mapping[str, str]) -> DatabaseRecord:
        with self._tx() as cur:
            self._database_row(cur, name)
            cur.execute("UPDATE databases SET properties = ? WHERE name = ?", (dumps(dict(properties)), name))
            return database_from_row(self._database_row(cur, name))

    # -- collections ------------------------------------------------------------------------
    @staticmethod
    def _collection_row(cur: SqlCursor, collection_id: int) -> Row:
        row: Row | None = cur.execute(
            f"SELECT {COLLECTION_COLUMNS} FROM collections WHERE collection_id = ?", (collection_id,)
        ).fetchone()
        if row is None:
            raise CollectionNotFound(f"collection not found[collection={collection_id}]")
        return row

    def _check_name_free(self, cur: SqlCursor, db_name: str, name: str) -> None:
        self._database_row(cur, db_name)
        if cur.execute(
            "SELECT 1 FROM collections WHERE db_name = ? AND name = ?", (db_name, name)
        ).fetchone():
            raise invalid(f"collection already exists[database={db_name}][collection={name}]")
        if cur.execute("SELECT 1 FROM aliases WHERE db_name = ? AND alias = ?", (db_name, name)).fetchone():
            raise AliasCollectionNameConflict(
                f"collection name [{name}] conflicts with an existing alias, please choice a unique name"
            )

    def create_collection(
        self,
        db_name: str,
        name: str,
        schema: CollectionSchema,
        *,
        partition_names: Sequence[str],
        properties: Mapping[str, str],
        consistency_level: int,
        shards_num: int,
        created_ts: int,
        created_utc_ms: int | None = None,
    ) -> CollectionRecord:
        """Create the collection and its partitions (in the given order) in one transaction."""
        if len(set(partition_names)) != len(partition_names):
            raise invalid(f"duplicate partition names {list(partition_names)}")
        utc_ms = int(time.time() * 1000) if created_utc_ms is None else created_utc_ms
        with self._tx() as cur:
            self._check_name_free(cur, db_name, name)
            ids = self._allocate(cur, 1 + len(partition_names))
            record = CollectionRecord(
                collection_id=ids[0],
                db_name=db_name,
                name=name,
                schema=schema,
                properties=dict(properties),
                consistency_level=consistency_level,
                shards_num=shards_num,
                created_ts=created_ts,
                created_utc_ms=utc_ms,
            )
            cur.execute(
                f"INSERT INTO collections ({COLLECTION_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    record.collection_id,
                    db_name,
                    name,
                    dumps(schema.to_dict()),
                    dumps(dict(properties)),
                    consistency_level,
                    shards_num,
                    created_ts,
                    utc_ms,
                ),
            )
            cur.executemany(
                "INSERT INTO partitions VALUES (?, ?, ?, ?)",
                [
                    (pid, record.collection_id, pname, created_ts)
                    for pid, pname in zip(ids[1:], partition_names, strict=True)
                ],
            )
            self._note_ts(cur, created_ts)
            return record

    def drop_collection(self, collection_id: int) -> DroppedData:
        """Drop the collection with its partitions, indexes, aliases, segments and load config."""
        with self._tx() as cur:
            self._collection_row(cur, collection_id)
            dropped = self._dropped(cur, "s.collection_id = ?", collection_id)
            cur.execute("DELETE FROM collections WHERE collection_id = ?", (collection_id,))
            return dropped

    def _dropped(self, cur: SqlCursor, segment_filter: str, value: int) -> DroppedData:
        segments = [
            segment_from_row(r)
            for r in cur.execute(
                f"SELECT {', '.join('s.' + c.strip() for c in SEGMENT_COLUMNS.split(','))} "
                f"FROM segments s WHERE {segment_filter}",
                (value,),
            )
        ]
        seg_indexes = [
            SegmentIndexRecord(*r)
            for r in cur.execute(
                "SELECT i.segment_id, i.index_id, i.field_name, i.path, i.nbytes FROM segment_indexes i "
                f"JOIN segments s ON s.segment_id = i.segment_id WHERE {segment_filter}",
                (value,),
            )
        ]
        return DroppedData(segments=tuple(segments), segment_indexes=tuple(seg_indexes))

    def get_collection(self, db_name: str, name: str) -> CollectionRecord:
        with self._read() as cur:
            row = cur.execute(
                f"SELECT {COLLECTION_COLUMNS} FROM collections WHERE db_name = ? AND name = ?",
                (db_name, name),
            ).fetchone()
            if row is None:
                self._database_row(cur, db_name)
                raise CollectionNotFound.named(db_name, name)
            return collection_from_row(row)

    def get_collection_by_id(self, collection_id: int) -> CollectionRecord:
        with self._read() as cur:
            return collection_from_row(self._collection_row(cur, collection_id))

    def resolve_collection(self, db_name: str, name_or_alias: str) -> CollectionRecord:
        """The collection called ``name_or_alias``, or the one that alias points to."""
        with self._read() as cur:
            row = cur.execute(
                "SELECT collection_id FROM aliases WHERE db_name = ? AND alias = ?", (db_name, name_or_alias)
            ).fetchone()
        if row is not None:
            return self.get_collection_by_id(row[0])
        return self.get_collection(db_name, name_or_alias)

    def list_collections(self, db_name: str | None = None) -> list[CollectionRecord]:
        with self._read() as cur:
            if db_name is None:
                rows = cur.execute(f"SELECT {COLLECTION_COLUMNS} FROM collections ORDER BY collection_id")
            else:
                self._database_row(cur, db_name)
                rows = cur.execute(
                    f"SELECT {COLLECTION_COLUMNS} FROM collections WHERE db_name = ? ORDER BY collection_id",
                    (db_name,),
                )
            return [collection_from_row(r) for r in rows]

    def rename_collection(self, collection_id: int, new_db_name: str, new_name: str) -> CollectionRecord:
        with self._tx() as cur:
            self._collection_row(cur, collection_id)
            self._check_name_free(cur, new_db_name, new_name)
            cur.execute(
                "UPDATE collections SET db_name = ?, name = ? WHERE collection_id = ?",
                (new_db_name, new_name, collection_id),
            )
            return collection_from_row(self._collection_row(cur, collection_id))

    def update_collection(
        self,
        collection_id: int,
        *,
        schema: CollectionSchema | None = None,
        properties: Mapping[str, str] | None = None,
    ) -> CollectionRecord:
        """Replace the schema and/or the whole properties map."""
        with self._tx() as cur:
            self._collection_row(cur, collection_id)
            if schema is not None:
                cur.execute(
                    "UPDATE collections SET schema = ? WHERE collection_id = ?",
                    (dumps(schema.to_dict()), collection_id),
                )
            if properties is not None:
                cur.execute(
                    "UPDATE collections SET properties = ? WHERE collection_id = ?",
                    (dumps(dict(properties)), collection_id),
                )
            return collection_from_row(self._collection_row(cur, collection_id))

    # -- partitions -------------------------------------------------------------------------
    def create_partition(self, collection_id: int, name: str, created_ts: int) -> PartitionRecord:
        with self._tx() as cur:
            self._collection_row(cur, collection_id)
            if cur.execute(
                "SELECT 1 FROM partitions WHERE collection_id = ? AND name = ?", (collection_id, name)
            ).fetchone():
                raise invalid(f"partition already exists[partition={name}]")
            (partition_id,) = self._allocate(cur, 1)
            cur.execute(
                "INSERT INTO partitions VALUES (?, ?, ?, ?)", (partition_id, collection_id, name, created_ts)
            )
            self._note_ts(cur, created_ts)
            return PartitionRecord(partition_id, collection_id, name, created_ts)

    def drop_partition(self, partition_id: int) -> DroppedData:
        with self._tx() as cur:
            if not cur.execute("SELECT 1 FROM partitions WHERE partition_id = ?", (partition_id,)).fetchone():
                raise PartitionNotFound(f"partition not found[partition={partition_id}]")
            dropped = self._dropped(cur, "s.partition_id = ?", partition_id)
            cur.execute("DELETE FROM partitions WHERE partition_id = ?", (partition_id,))
            return dropped

    def get_partition(self, collection_id: int, name: str) -> PartitionRecord:
        with self._read() as cur:
            row = cur.execute(
                "SELECT * FROM partitions WHERE collection_id = ? AND name = ?", (collection_id, name)
            ).fetchone()
        if row is None:
            raise PartitionNotFound(f"partition not found[partition={name}]")
        return PartitionRecord(*row)

    def list_partitions(self, collection_id: int) -> list[PartitionRecord]:
        with self._read() as cur:
            self._collection_row(cur, collection_id)
            rows = cur.execute(
                "SELECT * FROM partitions WHERE collection_id = ? ORDER BY partition_id", (collection_id,)
            )
            return [PartitionRecord(*r) for r in rows]

    # -- indexes ----------------------------------------------------------------------------
    def create_index(
        self, collection_id: int, field_name: str, index_name: str, params: Mapping[str, str], created_ts: int
    ) -> IndexRecord:
        with self._tx() as cur:
            self._collection_row(cur, collection_id)
            if cur.execute(
                "SELECT 1 FROM indexes WHERE collection_id = ? AND index_name = ?",
                (collection_id, index_name),
            ).fetchone():
                raise invalid(f"index already exists[indexName={index_name}]")
            (index_id,) = self._allocate(cur, 1)
            cur.execute(
                "INSERT INTO indexes VALUES (?, ?, ?, ?, ?, ?)",
                (index_id, collection_id, field_name, index_name, dumps(dict(params)), created_ts),
            )
            self._note_ts(cur, created_ts)
            return IndexRecord(index_id, collection_id, field_name, index_name, dict(params), created_ts)

    @staticmethod
    def _index_row(cur: SqlCursor, index_id: int) -> Row:
        row: Row | None = cur.execute("SELECT * FROM indexes WHERE index_id = ?", (index_id,)).fetchone()
        if row is None:
            raise IndexNotFound(f"index not found[indexID={index_id}]")
        return row

    def drop_index(self, index_id: int) -> DroppedData:
        """Drop the index definition and every segment's built file of it (returned)."""
        with self._tx() as cur:
            self._index_row(cur, index_id)
            files = [
                SegmentIndexRecord(*r)
                for r in cur.execute(
                    "SELECT segment_id, index_id, field_name, path, nbytes FROM segment_indexes "
                    "WHERE index_id = ?",
                    (index_id,),
                )
            ]
            cur.execute("DELETE FROM indexes WHERE index_id = ?", (index_id,))
            return DroppedData(segment_indexes=tuple(files))

    def update_index_params(self, index_id: int, params: Mapping[str, str]) -> IndexRecord:
        with self._tx() as cur:
            self._index_row(cur, index_id)
            cur.execute("UPDATE indexes SET params = ? WHERE index_id = ?", (dumps(dict(params)), index_id))
            return index_from_row(self._index_row(cur, index_id))

    def list_indexes(self, collection_id: int) -> list[IndexRecord]:
        with self._read() as cur:
            rows = cur.execute(
                "SELECT * FROM indexes WHERE collection_id = ? ORDER BY index_id", (collection_id,)
            )
            return [index_from_row(r) for r in rows]

    # -- aliases ----------------------------------------------------------------------------
    def _check_alias_target(self, cur: SqlCursor, db_name: str, alias: str, collection_id: int) -> None:
        collection = collection_from_row(self._collection_row(cur, collection_id))
        if collection.db_name != db_name:
            raise invalid(f"alias and collection must be in the same database[database={db_name}]")
        if cur.execute(
            "SELECT 1 FROM collections WHERE db_name = ? AND name = ?", (db_name, alias)
        ).fetchone():
            raise AliasCollectionNameConflict(
                f"alias name [{alias}] conflicts with an existing collection name, "
                "please choose a unique name"
            )

    def create_alias(self, db_name: str, alias: str, collection_id: int) -> AliasRecord:
        with self._tx() as cur:
            self._check_alias_target(cur, db_name, alias, collection_id)
            if cur.execute(
                "SELECT 1 FROM aliases WHERE db_name = ? AND alias = ?", (db_name, alias)
            ).fetchone():
                raise AliasAlreadyExists(f"alias already exist[database={db_name}][alias={alias}]")
            cur.execute("INSERT INTO aliases VALUES (?, ?, ?)", (db_name, alias, collection_id))
            return AliasRecord(db_name, alias, collection_id)

    def drop_alias(self, db_name: str, alias: str) -> None:
        with self._tx() as cur:
            if (
                cur.execute("DELETE FROM aliases WHERE db_name = ? AND alias = ?", (db_name, alias)).rowcount
                == 0
            ):
                raise AliasNotFound(f"alias not found[database={db_name}][alias={alias}]")

    def alter_alias(self, db_name: str, alias: str, collection_id: int) -> AliasRecord:
        with self._tx() as cur:
            self._check_alias_target(cur, db_name, alias, collection_id)
            updated = cur.execute(
                "UPDATE aliases SET collection_id = ? WHERE db_name = ? AND alias = ?",
                (collection_id, db_name, alias),
            ).rowcount
            if updated == 0:
                raise AliasNotFound(f"alias not found[database={db_name}][alias={alias}]")
            return AliasRecord(db_name, alias, collection_id)

    def list_aliases(self, db_name: str, collection_id: int | None = None) -> list[AliasRecord]:
        with self._read() as cur:
            if collection_id is None:
                rows = cur.execute("SELECT * FROM aliases WHERE db_name = ? ORDER BY alias", (db_name,))
            else:
                rows = cur.execute(
                    "SELECT * FROM aliases WHERE db_name = ? AND collection_id = ? ORDER BY alias",
                    (db_name, collection_id),
                )
            return [AliasRecord(*r) for r in rows]

    def resolve_alias(self, db_name: str, alias: str) -> int | None:
        with self._read() as cur:
            row = cur.execute(
                "SELECT collection_id FROM aliases WHERE db_name = ? AND alias = ?", (db_name, alias)
            ).fetchone()
        return None if row is None else int(row[0])

    # -- segments (the rest in segment_rows.py) -------------------------------------------
    def _insert_segment(self, cur: SqlCursor, segment: SegmentRecord) -> None:
        partition = cur.execute(
            "SELECT collection_id FROM partitions WHERE partition_id = ?", (segment.partition_id,)
        ).fetchone()
        if partition is None or partition[0] != segment.collection_id:
            raise PartitionNotFound(f"partition not found[partition={segment.partition_id}]")
        columns = {name: [f.path, f.nbytes] for name, f in segment.columns.items()}
        cur.execute(
            f"INSERT INTO segments ({SEGMENT_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                segment.segment_id,
                segment.collection_id,
                segment.partition_id,
                segment.num_rows,
                segment.directory,
                dumps(columns),
                segment.wal_lsn,
                segment.max_ts,
                segment.deletes_path,
            ),
        )
        self._note_ts(cur, segment.max_ts)

    # -- load configs -----------------------------------------------------------------------
    def set_load_config(self, config: LoadConfigRecord) -> None:
        with self._tx() as cur:
            self._collection_row(cur, config.collection_id)
            cur.execute(
                "INSERT INTO load_configs VALUES (?, ?, ?, ?, ?) ON CONFLICT (collection_id) DO UPDATE SET "
                "partitions = excluded.partitions, load_fields = excluded.load_fields, "
                "skip_load_dynamic_field = excluded.skip_load_dynamic_field, "
                "replica_number = excluded.replica_number",
                (
                    config.collection_id,
                    dumps(list(config.partitions)),
                    dumps(list(config.load_fields)),
                    int(config.skip_load_dynamic_field),
                    config.replica_number,
                ),
            )

    def get_load_config(self, collection_id: int) -> LoadConfigRecord | None:
        with self._read() as cur:
            row = cur.execute(
                "SELECT * FROM load_configs WHERE collection_id = ?", (collection_id,)
            ).fetchone()
        return None if row is None else load_config_from_row(row)

    def clear_load_config(self, collection_id: int) -> None:
        with self._tx() as cur:
            cur.execute("DELETE FROM load_configs WHERE collection_id = ?", (collection_id,))

    def list_load_configs(self) -> list[LoadConfigRecord]:
        with self._read() as cur:
            return [
                load_config_from_row(r)
                for r in cur.execute("SELECT * FROM load_configs ORDER BY collection_id")
            ]
