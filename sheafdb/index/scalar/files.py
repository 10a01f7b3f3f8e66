"""A scalar index as one Arrow IPC file beside the segment's column files.

The file holds one record batch of one row: each component array (keys, offsets, rows, the
valid mask, serialized bitmaps) is a ``large_list`` cell, so arrays of different lengths share
one batch; the structure and its parameters are the schema's metadata. Reading takes the
arrays back without a row-by-row pass.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from pyroaring import BitMap

from sheafdb.index.protocols import IndexStore, write_index_bytes
from sheafdb.index.scalar.postings import Postings
from sheafdb.index.scalar.structures import BitmapIndex, ElementIndex, NgramIndex, SortedIndex

ScalarIndex = SortedIndex | BitmapIndex | NgramIndex | ElementIndex


def _cell(values: pa.Array | np.ndarray) -> pa.Array:
    inner = values if isinstance(values, pa.Array) else pa.array(values)
    return pa.LargeListArray.from_arrays(pa.array([0, len(inner)], pa.int64()), inner)


def _postings_cells(postings: Postings) -> dict[str, pa.Array]:
    return {
        "keys": _cell(postings.keys),
        "offsets": _cell(postings.offsets),
        "rows": _cell(postings.rows),
    }


def save_scalar_index(index: ScalarIndex, store: IndexStore, path: str) -> int:
    """Write ``index`` at ``path``; returns the file's size."""
    meta = {"structure": index.kind, "num_rows": str(index.num_rows)}
    cells: dict[str, pa.Array] = {}
    if isinstance(index, (SortedIndex, ElementIndex)):
        cells.update(_postings_cells(index.postings))
        if isinstance(index, ElementIndex) and index.token_prefix:
            meta["token_prefix"] = index.token_prefix
    elif isinstance(index, NgramIndex):
        cells.update(_postings_cells(index.grams))
        meta.update(min_gram=str(index.min_gram), max_gram=str(index.max_gram))
    else:
        cells["keys"] = _cell(index.keys)
        cells["bitmaps"] = _cell(pa.array([b.serialize() for b in index.bitmaps], pa.large_binary()))
    if index.valid is not None:
        cells["valid"] = _cell(index.valid)
    batch = pa.record_batch(cells)
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, batch.schema.with_metadata(meta)) as writer:
        writer.write_batch(batch)
    return write_index_bytes(store, path, sink.getvalue().to_pybytes())


def load_scalar_index(store: IndexStore, path: str) -> ScalarIndex:
    reader = pa.ipc.open_stream(pa.py_buffer(store.read_bytes(path)))
    batch = reader.read_next_batch()
    meta = {k.decode(): v.decode() for k, v in (reader.schema.metadata or {}).items()}
    cells = {name: batch.column(name).values for name in batch.schema.names}
    num_rows = int(meta["num_rows"])
    valid = _numpy(cells["valid"]) if "valid" in cells else None
    keys = cells["keys"]
    key_array: np.ndarray | pa.Array = keys if pa.types.is_string(keys.type) else _numpy(keys)
    structure = meta["structure"]
    if structure == "bitmap":
        bitmaps = [BitMap.deserialize(b.as_py()) for b in cells["bitmaps"]]
        return BitmapIndex(key_array, bitmaps, valid, num_rows)
    postings = Postings(key_array, _numpy(cells["offsets"]), _numpy(cells["rows"]), num_rows)
    if structure == "ngram":
        return NgramIndex(postings, int(meta["min_gram"]), int(meta["max_gram"]), valid)
    if structure == "elements":
        return ElementIndex(postings, valid, meta.get("token_prefix", ""))
    return SortedIndex(postings, valid)


def _numpy(values: pa.Array) -> np.ndarray:
    return np.asarray(values.to_numpy(zero_copy_only=False))
