"""EngineConfig: how an Engine is built (its data dir, budgets, backends and cluster role).

Its own module so that the engine's parts and the API can name the configuration without
importing the facade (engine.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from sheafdb.storage.lease_rows import CommitListener, Lease


@dataclass(frozen=True)
class EngineConfig:
    data_dir: Path
    # A growing segment seals into immutable segment files at this many bytes (or on flush).
    seal_bytes: int = 64 * 1024 * 1024
    # Loads that would push the accounted memory past this are refused at once.
    # None: a share of the machine's RAM (see memory accountant).
    memory_budget_bytes: int | None = None
    # fsync the write-ahead log before acknowledging a write (durability); tests may turn it off.
    fsync: bool = True
    # Reload collections that were loaded before a restart, in the background.
    restore_loads: bool = True
    # Background compaction: a partition with this many small segments (or as many deletes
    # segments) is compacted; looked at after each seal and every interval seconds, and a
    # partition unchanged for a whole interval is packed (compaction.py has the rules).
    # None turns the background thread off (compact() still works).
    compaction_min_segments: int | None = 4
    compaction_interval_s: float = 30.0
    # Compaction merges sealed segments into segments of up to this size (Milvus's
    # dataCoord.segment.maxSize), each indexed before it replaces the small ones.
    segment_target_bytes: int = 1024 * 1024 * 1024
    # A load that would not fit may release loaded, unpinned collections (lowest
    # sheafdb.priority first, least recently read first) to make room.
    evict_under_pressure: bool = False
    # Where the catalog lives: None is the embedded SQLite file in data_dir; a
    # postgresql:// URL a PostgreSQL database (storage/catalog.py's open_catalog).
    catalog_url: str | None = None
    # Where segment and index files live: None is data_dir; an s3:// URL S3-compatible
    # storage, read through a cache in data_dir (storage/object_store.py's open_object_store).
    objects_url: str | None = None
    # Bytes of S3 objects the local cache keeps at most (least recently used unmapped files
    # go first); None: unbounded.
    object_cache_bytes: int | None = None
    # Map every loaded column file and faiss index instead of reading it (``serve --workers
    # N``: the query worker processes then share the same pages).
    share_pages: bool = False
    # Announce every catalog commit and log append on the shared change counter the query
    # workers of ``serve --workers N`` read before each read (storage/change_counter.py;
    # embedded catalog only).
    shared_changes: bool = False
    # Where bulk-import files are read (without objects_url): None is data_dir.
    import_root: Path | None = None
    # The cluster's writer: loads are placed on query workers (engine/distribution/), not here.
    cluster: bool = False
    # The cluster writer's lease (engine/write/writer_lease.py): every catalog write and log
    # append checks its fencing token. None: unfenced (embedded, or a PostgreSQL catalog
    # nobody else writes).
    writer_lease: Lease | None = None
    # The writer's step-down (WriterElection.step_down): told of a catalog write or log append
    # whose commit went unanswered, after which this process's memory may not match PostgreSQL.
    on_commit_unknown: CommitListener | None = None
