"""The shapes other parts rely on: a built index, and the object-store calls indexes make.

``IndexStore`` is the slice of ``sheafdb.storage.object_store.ObjectStore`` that saving and
loading use; declaring it here keeps index/ from importing its sibling storage/.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from sheafdb.index.params import IndexSpec


class IndexStore(Protocol):
    def write_bytes(self, path: str, data: bytes) -> None: ...
    def read_bytes(self, path: str) -> bytes: ...
    def size(self, path: str) -> int: ...
    def local_path(self, path: str) -> Path | None: ...


class VectorIndex(Protocol):
    """A built index over one segment's vectors; labels are row positions in the segment.

    Read-only once built or loaded, so any number of threads may search it at once.
    """

    spec: IndexSpec
    num_rows: int

    @property
    def nbytes(self) -> int: ...

    def search(
        self, queries: Any, k: int, params: Mapping[str, Any], allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray]: ...

    def range_search(
        self, queries: Any, params: Mapping[str, Any], allowed: np.ndarray | None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]: ...

    def save(self, store: IndexStore, path: str) -> int: ...


def write_index_bytes(store: IndexStore, path: str, data: bytes) -> int:
    """Write a serialized index atomically through the store; returns its size."""
    store.write_bytes(path, data)
    return len(data)
