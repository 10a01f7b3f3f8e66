"""Where a proxy sends a write: the owner of its collection's log.

Every collection's log has one owner, the holder of the lease ``log/<collection_id>`` (a
cluster writer process: the coordinator's or a shard writer's, engine/write/log_ownership.py).
Insert, Upsert and Delete go to it; everything else goes to the coordinator (the ``writer``
lease, proxy_relay.WriterTarget). The proxy reads the collection's name and database from the
request without decoding its rows, resolves the name (or alias) to the collection's id and the
id to its lease in the catalog, and remembers both for ``CACHE_S``: a call that fails for want
of the owner (it died, or it answers that it no longer owns the log) resolves afresh.

A collection the catalog does not know, or whose log nobody owns at the moment (a new one, or
its owner died and no writer took it over yet), goes to the coordinator: it answers with
Milvus's error for a missing collection, and writes through its own process's log owner, which
takes a log nobody holds.

Threads: the relay's handler threads and the REST relay's call in. ``_lock`` guards the two
caches (held only to read or swap an entry).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Protocol, TypeVar

from sheafdb.errors import SheafError
from sheafdb.storage.lease_rows import Lease, log_lease_name
from sheafdb.storage.records import CollectionRecord

# The calls that append to a collection's log, by gRPC method and by REST path.
OWNED_METHODS = frozenset(
    {
        "/milvus.proto.milvus.MilvusService/Insert",
        "/milvus.proto.milvus.MilvusService/Upsert",
        "/milvus.proto.milvus.MilvusService/Delete",
    }
)
OWNED_REST = ("/v2/vectordb/entities/insert", "/v2/vectordb/entities/upsert", "/v2/vectordb/entities/delete")
# How long a resolved name and a resolved owner are used before they are read again.
CACHE_S = 1.0
# Entries kept at most per cache (names of collections written through this proxy).
CACHE_ENTRIES = 4096
# InsertRequest, UpsertRequest and DeleteRequest all carry these as fields 2 and 3.
_DB_FIELD, _NAME_FIELD = 2, 3
DEFAULT_DATABASE = "default"

_K = TypeVar("_K")
_V = TypeVar("_V")


class OwnerCatalog(Protocol):
    def resolve_collection(self, db_name: str, name_or_alias: str) -> CollectionRecord: ...
    def current_lease(self, name: str) -> Lease | None: ...


def grpc_collection(request: bytes) -> tuple[str, str]:
    """(db_name, collection_name) of a serialized Insert/Upsert/Delete request, read from the
    protobuf wire format: the rows (field 5 onwards, nearly all the bytes) are skipped by
    their length, never decoded."""
    found: dict[int, str] = {}
    view = memoryview(request)
    pos = 0
    while pos < len(view) and len(found) < 2:
        key, pos = _varint(view, pos)
        number, wire_type = key >> 3, key & 7
        if wire_type == 0:
            _, pos = _varint(view, pos)
        elif wire_type == 1:
            pos += 8
        elif wire_type == 5:
            pos += 4
        elif wire_type == 2:
            length, pos = _varint(view, pos)
            if number in (_DB_FIELD, _NAME_FIELD):
                found[number] = bytes(view[pos : pos + length]).decode("utf-8", "replace")
            pos += length
        else:
            break  # groups are not used by these messages: the handler will refuse the bytes
    return found.get(_DB_FIELD, ""), found.get(_NAME_FIELD, "")


def rest_collection(body: bytes) -> tuple[str, str]:
    """(dbName, collectionName) of a REST entities/insert, upsert or delete body ("" when the
    body is not such an object: the writer that gets it answers the client's error)."""
    try:
        parsed = json.loads(body)
    except ValueError:
        return "", ""
    if not isinstance(parsed, dict):
        return "", ""
    db, name = parsed.get("dbName", ""), parsed.get("collectionName", "")
    return (db if isinstance(db, str) else ""), (name if isinstance(name, str) else "")


def _varint(view: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(view):
        byte = view[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7
    return value, len(view) + 1  # truncated: ends the scan


class LogOwnerTarget:
    """The address of a collection's log owner; None for a collection the catalog does not
    know or whose log has no live owner (the coordinator answers)."""

    def __init__(self, catalog: OwnerCatalog, *, clock: Callable[[], float] = time.time) -> None:
        self._catalog = catalog
        self._clock = clock
        self._lock = threading.Lock()
        self._ids: dict[tuple[str, str], tuple[int, float]] = {}  # (db, name) -> (id, read at)
        self._owners: dict[int, tuple[str, float]] = {}  # id -> (holder, read at)

    def address(self, db: str, name: str, *, fresh: bool = False) -> str | None:
        db = db or DEFAULT_DATABASE
        now = self._clock()
        collection_id = self._collection_id(db, name, now, fresh)
        if collection_id is None:
            return None
        with self._lock:
            cached = self._owners.get(collection_id)
        if cached is not None and not fresh and now - cached[1] < CACHE_S:
            return cached[0]
        lease = self._catalog.current_lease(log_lease_name(collection_id))
        if lease is None or lease.expires_at <= now:
            with self._lock:
                self._owners.pop(collection_id, None)
            return None
        with self._lock:
            _remember(self._owners, collection_id, (lease.holder, now))
        return lease.holder

    def _collection_id(self, db: str, name: str, now: float, fresh: bool) -> int | None:
        with self._lock:
            cached = self._ids.get((db, name))
        if cached is not None and not fresh and now - cached[1] < CACHE_S:
            return cached[0]
        try:
            record = self._catalog.resolve_collection(db, name)
        except SheafError:
            return None  # no such database or collection: the coordinator says so
        with self._lock:
            _remember(self._ids, (db, name), (record.collection_id, now))
        return record.collection_id


def _remember(cache: dict[_K, _V], key: _K, value: _V) -> None:
    if len(cache) >= CACHE_ENTRIES and key not in cache:
        cache.clear()  # a bound, not an eviction policy: the entries are a second's worth
    cache[key] = value
