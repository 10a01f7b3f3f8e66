"""Parsed JSON of growing rows, kept per immutable batch so appends never re-parse old rows.

A growing table is a chain of immutable batches (Arrow chunks); each snapshot's table shares
the chunks of the previous one plus the new batches. Consecutive chunks are grouped into runs
of about ``RUN_ROWS`` rows (so many tiny inserts do not make as many pieces) and each run gets
one ``JsonColumn``, keyed by the identity of its chunks' buffers. An entry holds its chunks,
so their buffers cannot be freed and their addresses reused while the key exists. ``retain``
drops the runs no longer in any growing table (sealed, or a run that grew a new tail).

Concurrency: ``_lock`` guards the map; parsing happens later, under each JsonColumn's own lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable

import pyarrow as pa

from sheafdb.expr import ChainedJsonColumn, JsonColumn, JsonProjections

# Rows per run of chunks: large enough to amortise a reader, small enough that re-parsing the
# open run after an append stays cheap.
RUN_ROWS = 4096

_ChunkId = tuple[int, ...]


class GrowingJsonCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._runs: dict[tuple[_ChunkId, ...], tuple[tuple[pa.Array, ...], JsonColumn]] = {}

    def column(self, text: pa.ChunkedArray) -> JsonProjections:
        """The prepared JSON column of ``text`` (a growing table's JSON column)."""
        if text.num_chunks == 0:
            return JsonColumn(text)
        pieces: list[JsonColumn] = []
        with self._lock:
            for run in _runs(text.chunks):
                key = tuple(_chunk_id(chunk) for chunk in run)
                entry = self._runs.get(key)
                if entry is None:
                    entry = self._runs[key] = (run, JsonColumn(pa.chunked_array(run, type=text.type)))
                pieces.append(entry[1])
        return pieces[0] if len(pieces) == 1 else ChainedJsonColumn(pieces)

    def retain(self, tables: Iterable[pa.Table]) -> None:
        """Forget every run not made of chunks of ``tables`` (the current growing tables)."""
        live = {_chunk_id(chunk) for table in tables for column in table.columns for chunk in column.chunks}
        with self._lock:
            for key in [key for key in self._runs if not all(part in live for part in key)]:
                del self._runs[key]

    def clear(self) -> None:
        with self._lock:
            self._runs.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._runs)


def _runs(chunks: list[pa.Array]) -> list[tuple[pa.Array, ...]]:
    runs: list[tuple[pa.Array, ...]] = []
    current: list[pa.Array] = []
    rows = 0
    for chunk in chunks:
        current.append(chunk)
        rows += len(chunk)
        if rows >= RUN_ROWS:
            runs.append(tuple(current))
            current, rows = [], 0
    if current:
        runs.append(tuple(current))
    return runs


def _chunk_id(chunk: pa.Array) -> _ChunkId:
    buffers = tuple(buffer.address if buffer is not None else 0 for buffer in chunk.buffers())
    return (chunk.offset, len(chunk), *buffers)
