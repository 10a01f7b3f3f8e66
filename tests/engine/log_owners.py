"""Log owners for tests that write through a cluster-mode Engine on PostgreSQL.

Such an Engine is the cluster's coordinator: it appends no Insert, Upsert or Delete itself but
hands them to its process's log owner member (a ShardWriter, attached as in the server) and
follows the logs (engine/write/log_following.py). A member owns a new collection's log once
its ownership round adopts it; ``take_log`` has it take the log at once instead.
"""

from __future__ import annotations

from pathlib import Path

from sheafdb.api.cluster.worker_client import GrpcWorkerClient
from sheafdb.engine.engine import Engine
from sheafdb.engine.write.shard_writer import ShardWriter
from sheafdb.storage.log import LogRecord
from sheafdb.storage.pg_log import PgLogs

# Long: no ownership round runs during a test unless it asks for one (rounds every ttl / 4).
OWNER_TTL_S = 60.0


def open_log_owner(catalog_url: str, data_dir: Path, holder: str) -> ShardWriter:
    """A log owner member ``holder`` ("host:port") with its own connections and ownership."""
    return ShardWriter.open(
        catalog_url,
        data_dir,
        holder,
        ttl_s=OWNER_TTL_S,
        worker_client=lambda catalog: GrpcWorkerClient(lambda: str(catalog.cluster_secret())),
    )


def attach_log_owner(engine: Engine, catalog_url: str, data_dir: Path) -> ShardWriter:
    """The coordinator's own member, attached to it (the caller closes it after the engine)."""
    writer = open_log_owner(catalog_url, data_dir, "127.0.0.1:1")
    engine.attach_log_writer(writer)
    return writer


def take_log(engine: Engine, name: str, db: str = "default") -> None:
    """The engine's member owns the collection's log now (a no-op for an engine that appends
    itself: embedded, or a cluster on the file log)."""
    following = engine._following
    if following is None:
        return
    writer = following.writer
    assert isinstance(writer, ShardWriter)
    writer.ownership.take(engine.describe_collection(db, name).collection_id)


def logged_records(url: str, collection_id: int) -> list[LogRecord]:
    """The records the collection's log holds now (read as a follower would)."""
    logs = PgLogs(url, read_only=True)
    try:
        return list(logs.tail(collection_id).read_new())
    finally:
        logs.close()
