"""FileLogs: the embedded deployment's logs, one write-ahead log directory per collection.

``<data dir>/wal/<collection id>/`` holds a collection's WriteAheadLog (wal.py); followers
in other processes of the same machine read it with a WalTail (wal_tail.py). Stateless apart
from the data dir: the logs themselves are the collections' (they close them).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from sheafdb.storage.lease_rows import Lease
from sheafdb.storage.wal import WriteAheadLog
from sheafdb.storage.wal_tail import WalTail

WAL_ROOT = "wal"


def wal_directory(data_dir: Path, collection_id: int) -> Path:
    return data_dir / WAL_ROOT / str(collection_id)


class FileLogs:
    """A LogStore of WriteAheadLog directories under ``data_dir/wal``."""

    def __init__(self, data_dir: Path, *, fsync: bool = True) -> None:
        self._data_dir = Path(data_dir)
        self._fsync = fsync
        # Told of every record appended to any log opened after it is set (the query
        # workers' change counter, change_counter.py's publish_data_changes).
        self.on_append: Callable[[], None] | None = None

    def open(self, collection_id: int, *, fence: Lease | None = None) -> WriteAheadLog:
        """``fence`` is ignored: one process writes the data dir, no leases."""
        directory = wal_directory(self._data_dir, collection_id)
        return WriteAheadLog(directory, fsync=self._fsync, on_append=self.on_append)

    def create(self, collection_id: int) -> WriteAheadLog:
        self.remove(collection_id)
        return self.open(collection_id)

    def remove(self, collection_id: int) -> None:
        shutil.rmtree(wal_directory(self._data_dir, collection_id), ignore_errors=True)

    def remove_orphans(self, known: set[int]) -> list[str]:
        removed: list[str] = []
        root = self._data_dir / WAL_ROOT
        if root.is_dir():
            for directory in root.iterdir():
                if not (directory.name.isdigit() and int(directory.name) in known):
                    shutil.rmtree(directory, ignore_errors=True)
                    removed.append(str(directory))
        return removed

    def tail(self, collection_id: int) -> WalTail:
        return WalTail(wal_directory(self._data_dir, collection_id))

    def close(self) -> None:
        """Nothing of its own to close (each collection closes its log)."""
