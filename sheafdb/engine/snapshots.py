"""Collection snapshots: a point-in-time capture of a collection that costs no copy.

What a snapshot holds (Milvus 2.6 / 3.0's ``CreateSnapshot``): the schema, properties,
partitions and indexes, and the collection's *flushed* data: its sealed segments (column and
index files) and the deletes sealed with them, all as of one moment (the last seal; taken
under the collection's ``seal_lock``, so no seal or compaction swap is half-way). Rows and
deletes not flushed yet are left out, as Milvus leaves out growing segments: call flush first.

The files get the snapshot's own names under ``snapshots/<snapshot_id>/``: hard links on local
disk (the same bytes, no copy), server-side copies on S3 (``ObjectStore.link``). So compaction,
truncate, drop partition and drop collection may delete the collection's names at will: the
snapshot's stay until the snapshot is dropped, and the bytes go with the last name. The
captured deletes (small, in memory) are written as one file. The catalog row (with its
manifest, snapshot_rows.py) is written after the files: a crash in between leaves a directory
no row names, which the next start removes (``remove_orphan_snapshots``).

A pin (``PinSnapshotData``, with a time to live) keeps a snapshot from being dropped while
someone copies its files out; pins are catalog rows too. Restore is restore.py's.

Lock: ``_lock`` serialises creates, drops and pins (the name check and the catalog write of a
create are one step) and guards ``_restoring``; reads go to the catalog directly.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from sheafdb.engine.collection import Collection
from sheafdb.engine.name_rules import MAX_NAME_LENGTH, check_collection_name
from sheafdb.engine.snapshot import SealedSegment
from sheafdb.engine.write.sealing import DELETES_FILE, write_delete_records
from sheafdb.errors import CollectionNotFound, invalid
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.object_store import ObjectStore
from sheafdb.storage.snapshot_rows import SnapshotPinRecord, SnapshotRecord

SNAPSHOTS_ROOT = "snapshots"
# A pin asked with ttl_seconds=0 lasts this long (Milvus: "0 uses the server default").
DEFAULT_PIN_TTL_S = 3600
# The longest pin (ten years): a bound that keeps the expiry a 64-bit number of milliseconds.
MAX_PIN_TTL_S = 10 * 365 * 24 * 3600


@dataclass(frozen=True)
class SnapshotInfo:
    name: str
    description: str
    db_name: str
    collection_name: str
    partition_names: tuple[str, ...]
    # Milliseconds since the epoch (pymilvus's SnapshotInfo.create_ts).
    create_ts: int
    location: str


def snapshot_directory(snapshot_id: int) -> str:
    return f"{SNAPSHOTS_ROOT}/{snapshot_id}"


def check_snapshot_name(name: str) -> None:
    """Milvus's rules for object names (as a collection name's), in the snapshot's words."""
    if not name.strip():
        raise invalid("snapshot name should not be empty")
    head = f"Invalid snapshot name: {name}."
    if len(name) > MAX_NAME_LENGTH:
        raise invalid(f"{head} the length of a snapshot name must be less than {MAX_NAME_LENGTH} characters")
    if not (name[0] == "_" or (name[0].isascii() and name[0].isalpha())):
        raise invalid(f"{head} the first character of a snapshot name must be an underscore or letter")
    if any(not (ch == "_" or (ch.isascii() and ch.isalnum())) for ch in name[1:]):
        raise invalid(f"{head} snapshot name can only contain numbers, letters and underscores")


def snapshot_not_found(name: str) -> Exception:
    return invalid(f"snapshot not found[snapshot={name}]")


def _manifest(
    coll: Collection,
    snapshot_id: int,
    sealed: tuple[SealedSegment, ...],
    deletes_path: str | None,
    n_deletes: int,
) -> dict[str, Any]:
    """The catalog's description of a snapshot: everything a restore needs, paths included."""
    names_by_id = {pid: name for name, pid in coll.partitions.items()}
    base = snapshot_directory(snapshot_id)
    segments = []
    for seg in sealed:
        directory = f"{base}/{seg.segment_id}"
        segments.append(
            {
                "segment_id": seg.segment_id,
                "partition": names_by_id[seg.partition_id],
                "num_rows": seg.num_rows,
                "columns": {
                    name: [f"{directory}/{c.path.rsplit('/', 1)[-1]}", c.nbytes]
                    for name, c in seg.columns.items()
                },
                "index_files": {
                    field: [f.index_name, f"{directory}/{f.path.rsplit('/', 1)[-1]}", f.nbytes]
                    for field, f in seg.index_files.items()
                },
            }
        )
    record = coll.record
    return {
        "collection_id": coll.collection_id,
        "schema": record.schema.to_dict(),
        "properties": dict(record.properties),
        "consistency_level": record.consistency_level,
        "shards_num": record.shards_num,
        "partitions": sorted(coll.partitions, key=lambda n: coll.partitions[n]),
        "partition_ids": dict(coll.partitions),
        "indexes": [
            {"field_name": i.field_name, "index_name": i.index_name, "params": dict(i.params)}
            for i in coll.indexes
        ],
        "segments": segments,
        "deletes": None if deletes_path is None else {"path": deletes_path, "count": n_deletes},
    }


class Snapshots:
    """Create, describe, list, drop and pin snapshots (thread-safe; see the module docstring)."""

    def __init__(
        self,
        catalog: Catalog,
        store: ObjectStore,
        resolve: Callable[[str, str], Collection],
        next_timestamp: Callable[[], int],
    ) -> None:
        self._catalog = catalog
        self._store = store
        self._resolve = resolve
        self._next_timestamp = next_timestamp
        self._lock = threading.Lock()
        # Snapshot id -> restores and exports running from it (they read its files: no drop meanwhile).
        self._restoring: dict[int, int] = {}

    def hold(self, snapshot_id: int, delta: int) -> None:
        with self._lock:
            count = self._restoring.get(snapshot_id, 0) + delta
            if count > 0:
                self._restoring[snapshot_id] = count
            else:
                self._restoring.pop(snapshot_id, None)

    # -- lookups ----------------------------------------------------------------------------
    def _of_collection(self, db: str, collection: str) -> list[SnapshotRecord]:
        """The snapshots of a collection: by its id while it exists (so a renamed or aliased
        collection keeps them, as Milvus keys them by id), by the name it had once it is gone."""
        check_collection_name(collection)
        try:
            collection_id: int | None = self._resolve(db, collection).collection_id
        except CollectionNotFound:
            collection_id = None
        if collection_id is not None:
            return [r for r in self._catalog.list_snapshots() if r.collection_id == collection_id]
        return [
            r
            for r in self._catalog.list_snapshots()
            if (r.db_name, r.collection_name) == (db, collection) and not self._exists(r.collection_id)
        ]

    def _exists(self, collection_id: int) -> bool:
        try:
            self._catalog.get_collection_by_id(collection_id)
        except CollectionNotFound:
            return False
        return True

    def find(self, db: str, collection: str, name: str) -> SnapshotRecord:
        check_collection_name(collection)
        check_snapshot_name(name)
        for r in self._of_collection(db, collection):
            if r.name == name:
                return r
        raise snapshot_not_found(name)

    def describe(self, db: str, collection: str, name: str) -> SnapshotInfo:
        r = self.find(db, collection, name)
        return SnapshotInfo(
            name=r.name,
            description=r.description,
            db_name=r.db_name,
            collection_name=r.collection_name,
            partition_names=tuple(r.manifest["partitions"]),
            create_ts=r.created_ms,
            location=snapshot_directory(r.snapshot_id),
        )

    def list(self, db: str, collection: str = "") -> list[str]:
        """Names of the snapshots of ``collection`` (every collection of ``db`` if empty);
        a dropped collection's snapshots are still listed: they are what restores it."""
        if collection:
            return [r.name for r in self._of_collection(db, collection)]
        return [r.name for r in self._catalog.list_snapshots() if r.db_name == db]

    # -- create / drop ----------------------------------------------------------------------
    def create(self, db: str, collection: str, name: str, description: str, protection_s: int = 0) -> None:
        """``protection_s`` (Milvus's compaction_protection_seconds) is accepted: a snapshot's
        files are its own names, so compaction never takes its data whatever the value."""
        check_collection_name(collection)
        check_snapshot_name(name)
        if protection_s < 0:
            raise invalid(f"compaction_protection_seconds must be non-negative, got {protection_s}")
        coll = self._resolve(db, collection)
        with self._lock:
            if any(r.name == name for r in self._of_collection(db, collection)):
                raise invalid(f"snapshot already exists[snapshot={name}]")
            with coll.seal_lock:
                # Holding the segment objects keeps their files alive until linked (sealing.py).
                sealed, deletes = coll.sealed_state()
                created_ts = self._next_timestamp()
            snapshot_id = self._catalog.allocate_id()
            base = snapshot_directory(snapshot_id)
            try:
                deletes_path = None
                if deletes.num_rows:
                    deletes_path = f"{base}/{DELETES_FILE}"
                    write_delete_records(self._store, deletes_path, deletes)
                manifest = _manifest(coll, snapshot_id, sealed, deletes_path, deletes.num_rows)
                self._link_segments(sealed, manifest)
                self._catalog.add_snapshot(
                    SnapshotRecord(
                        snapshot_id,
                        coll.collection_id,
                        db,
                        coll.name,
                        name,
                        description,
                        created_ts,
                        int(time.time() * 1000),
                        manifest,
                    )
                )
            except BaseException:
                self._store.delete_prefix(base)
                raise

    def _link_segments(self, sealed: tuple[SealedSegment, ...], manifest: Mapping[str, Any]) -> None:
        for seg, entry in zip(sealed, manifest["segments"], strict=True):
            for name, column in seg.columns.items():
                self._store.link(column.path, entry["columns"][name][0])
            for field, index_file in list(seg.index_files.items()):
                try:
                    self._store.link(index_file.path, entry["index_files"][field][1])
                except FileNotFoundError:  # the index was dropped meanwhile: a restore rebuilds it
                    del entry["index_files"][field]

    def drop(self, db: str, collection: str, name: str) -> None:
        """Refused while pinned; the files go with the catalog row (row first: a crash in
        between leaves files no row names, removed at the next start)."""
        with self._lock:
            record = self.find(db, collection, name)
            if record.snapshot_id in self._restoring:
                raise invalid(
                    f"snapshot is being restored or exported, drop it once the job ends[snapshot={name}]"
                )
            now_ms = int(time.time() * 1000)
            if any(
                p.snapshot_id == record.snapshot_id and p.expires_ms > now_ms
                for p in self._catalog.list_snapshot_pins()
            ):
                raise invalid(f"snapshot is pinned, unpin it before dropping it[snapshot={name}]")
            self._catalog.drop_snapshot(record.snapshot_id)
            self._store.delete_prefix(snapshot_directory(record.snapshot_id))

    # -- pins -------------------------------------------------------------------------------
    def pin(self, db: str, collection: str, name: str, ttl_s: int) -> int:
        if not 0 <= ttl_s <= MAX_PIN_TTL_S:
            raise invalid(f"ttl_seconds must be between 0 and {MAX_PIN_TTL_S}, got {ttl_s}")
        with self._lock:
            record = self.find(db, collection, name)
            pin_id = self._catalog.allocate_id()
            expires_ms = int(time.time() * 1000) + (ttl_s or DEFAULT_PIN_TTL_S) * 1000
            self._catalog.add_snapshot_pin(SnapshotPinRecord(pin_id, record.snapshot_id, expires_ms))
            return pin_id

    def unpin(self, pin_id: int) -> None:
        with self._lock:
            if not any(p.pin_id == pin_id for p in self._catalog.list_snapshot_pins()):
                raise invalid(f"snapshot pin not found[pin_id={pin_id}]")
            self._catalog.drop_snapshot_pin(pin_id)


def remove_orphan_snapshots(store: ObjectStore, catalog: Catalog) -> list[str]:
    """Snapshot directories no catalog row names (a create cut short by a crash or an error)."""
    known = {snapshot_directory(r.snapshot_id) for r in catalog.list_snapshots()}
    doomed = sorted({"/".join(p.split("/")[:2]) for p in store.list(SNAPSHOTS_ROOT)} - known)
    for directory in doomed:
        store.delete_prefix(directory)
    return doomed
