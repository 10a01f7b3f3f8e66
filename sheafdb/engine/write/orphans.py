"""Startup garbage collection: files a crash left behind that no catalog entry names.

A seal or compaction writes files before it registers them (see sealing.py), and retired
segments are deleted only after their catalog entry is gone, so a crash can leave:
- segment directories never registered, and ``<dir>.<uuid>.tmp`` directories of a torn
  ``write_segment``;
- inside a registered segment directory: an index file whose catalog record never landed,
  or an object store temp file;
- the directories and logs of a collection dropped just before the crash.
Everything under ``collections/`` and every log (storage/log.py) the catalog does not name is removed. Runs
before any collection opens, so nothing else touches these files meanwhile.
"""

from __future__ import annotations

from sheafdb.storage.catalog import Catalog
from sheafdb.storage.log import LogStore
from sheafdb.storage.object_store import ObjectStore

COLLECTIONS_ROOT = "collections"


def remove_orphans(store: ObjectStore, catalog: Catalog, logs: LogStore) -> list[str]:
    """Delete unregistered segment files and dropped collections' logs; returns what went."""
    known = {r.collection_id for r in catalog.list_collections()}
    wanted: set[str] = set()
    registered_dirs: set[str] = set()
    for cid in known:
        for seg in catalog.list_segments(cid):
            registered_dirs.add(seg.directory)
            wanted.update(c.path for c in seg.columns.values())
            if seg.deletes_path is not None:
                wanted.add(seg.deletes_path)
        wanted.update(si.path for si in catalog.list_segment_indexes(cid))
    removed: list[str] = []
    doomed_dirs: set[str] = set()
    for path in store.list(COLLECTIONS_ROOT):
        if path in wanted:
            continue
        parts = path.split("/")
        # collections/<cid>/segments/<segment dir>/<file>
        directory = "/".join(parts[:4])
        if len(parts) == 5 and directory in registered_dirs:
            store.delete(path)
            removed.append(path)
        else:
            doomed_dirs.add(directory if len(parts) >= 4 else path)
    doomed_dirs.update(_empty_unregistered_dirs(store, registered_dirs))
    for directory in sorted(doomed_dirs):
        store.delete_prefix(directory)
        removed.append(directory)
    removed.extend(logs.remove_orphans(known))
    return removed


def _empty_unregistered_dirs(store: ObjectStore, registered_dirs: set[str]) -> set[str]:
    """Segment directories holding no file at all (invisible to ``list``), on a local store."""
    root = store.local_path(COLLECTIONS_ROOT)
    if root is None or not root.is_dir():
        return set()
    found = set()
    for segment_dir in root.glob("*/segments/*"):
        relative = f"{COLLECTIONS_ROOT}/{segment_dir.relative_to(root).as_posix()}"
        if segment_dir.is_dir() and relative not in registered_dirs and not any(segment_dir.iterdir()):
            found.add(relative)
    return found
