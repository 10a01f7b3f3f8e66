"""Sorted keys and their rows: the structure behind INVERTED, STL_SORT, TRIE and NGRAM.

Every distinct non-null value of a segment's column is a key; the keys are kept sorted
(numpy for numbers and booleans, an Arrow string array for text) and each key owns a run of
``rows`` (``offsets[i]:offsets[i + 1]``, rows ascending). Equality and ``in`` are one binary
search per value, a range or a prefix is two (``numpy.searchsorted``, or ``bisect`` over the
Arrow strings), and the answer is a slice of ``rows``: the work is the size of the answer, not
of the segment. A sorted key array answers every question a trie does (a prefix is a range of
sorted keys), which is why TRIE shares it.

Floating NaN values are left out of the keys (they equal nothing and order with nothing, as in
Arrow's comparisons); null rows are left out too and recorded in ``valid``.
"""

from __future__ import annotations

import bisect
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


class _ArrowKeys(Sequence[str]):
    """An Arrow string array seen as a Python sequence, for ``bisect`` (one value per probe)."""

    def __init__(self, keys: pa.Array) -> None:
        self._keys = keys

    def __len__(self) -> int:
        return len(self._keys)

    def __getitem__(self, i):  # type: ignore[no-untyped-def, override]
        return self._keys[i].as_py()


class Postings:
    """Rows per sorted key; read-only once built, safe to share between threads."""

    def __init__(
        self, keys: np.ndarray | pa.Array, offsets: np.ndarray, rows: np.ndarray, num_rows: int
    ) -> None:
        self.keys = keys
        self.offsets = offsets
        self.rows = rows
        self.num_rows = num_rows
        self._text = isinstance(keys, pa.Array)
        self._probe: Sequence[object] = _ArrowKeys(keys) if isinstance(keys, pa.Array) else keys

    @classmethod
    def build(cls, values: pa.Array, row_ids: np.ndarray, num_rows: int) -> Postings:
        """Postings of ``values`` (no nulls) found at ``row_ids`` (ascending) of ``num_rows`` rows."""
        if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
            # Hash to distinct values first, sort only those, then order the rows by the
            # distinct value's rank with numpy (sorting every string is far slower).
            encoded = pc.dictionary_encode(values)
            distinct_order = np.asarray(pc.sort_indices(encoded.dictionary).to_numpy(), dtype=np.int64)
            rank = np.empty(len(distinct_order), dtype=np.int64)
            rank[distinct_order] = np.arange(len(distinct_order))
            codes = rank[np.asarray(encoded.indices.to_numpy(zero_copy_only=False), dtype=np.int64)]
            order = np.argsort(codes, kind="stable")
            starts = np.cumsum(np.bincount(codes, minlength=len(distinct_order)))[:-1]
            keys: np.ndarray | pa.Array = encoded.dictionary.take(pa.array(distinct_order)).cast(pa.string())
        else:
            numbers = _numeric(values)
            order = np.argsort(numbers, kind="stable")
            ordered = numbers[order]
            keys, first = np.unique(ordered, return_index=True)
            starts = first[1:]
        offsets = np.concatenate(([0], starts, [len(order)])).astype(np.int64)
        if len(order) == 0:
            offsets = np.zeros(1, dtype=np.int64)
        rows = row_ids[order].astype(np.int32 if num_rows < 2**31 else np.int64)
        return cls(keys, offsets, rows, num_rows)

    @property
    def nbytes(self) -> int:
        keys = self.keys.nbytes if isinstance(self.keys, pa.Array) else int(self.keys.nbytes)
        return int(keys + self.offsets.nbytes + self.rows.nbytes)

    @property
    def is_text(self) -> bool:
        return self._text

    @property
    def cardinality(self) -> int:
        return len(self.keys)

    # -- positions of keys -------------------------------------------------------------------
    def _left(self, value: object) -> int:
        if self._text:
            return bisect.bisect_left(self._probe, value)  # type: ignore[arg-type]
        return int(np.searchsorted(self.keys, value, "left"))  # type: ignore[arg-type]

    def _right(self, value: object) -> int:
        if self._text:
            return bisect.bisect_right(self._probe, value)  # type: ignore[arg-type]
        return int(np.searchsorted(self.keys, value, "right"))  # type: ignore[arg-type]

    def key_span(
        self, low: object | None, low_inclusive: bool, high: object | None, high_inclusive: bool
    ) -> tuple[int, int]:
        """Key positions [first, last) of the keys between the bounds (None: unbounded)."""
        first = 0 if low is None else (self._left(low) if low_inclusive else self._right(low))
        last = len(self.keys) if high is None else (self._right(high) if high_inclusive else self._left(high))
        return first, max(first, last)

    def prefix_span(self, prefix: str) -> tuple[int, int]:
        """Key positions of the text keys starting with ``prefix`` (a contiguous run)."""
        width = len(prefix)
        first = bisect.bisect_left(self._probe, prefix)  # type: ignore[arg-type]
        last = bisect.bisect_right(self._probe, prefix, lo=first, key=lambda k: k[:width])  # type: ignore[arg-type, index]
        return first, last

    def equal_keys(self, values: Sequence[object]) -> list[int]:
        """Key positions of the given values that are keys."""
        found = []
        for value in values:
            at = self._left(value)
            if at < len(self.keys) and self._key(at) == value:
                found.append(at)
        return found

    def _key(self, at: int) -> object:
        return self._probe[at]

    # -- rows ------------------------------------------------------------------------------------
    def span_rows(self, first: int, last: int) -> np.ndarray:
        return self.rows[self.offsets[first] : self.offsets[last]]

    def span_count(self, first: int, last: int) -> int:
        return int(self.offsets[last] - self.offsets[first])

    def keys_rows(self, positions: Sequence[int]) -> np.ndarray:
        if not positions:
            return np.empty(0, dtype=self.rows.dtype)
        return np.concatenate([self.rows[self.offsets[p] : self.offsets[p + 1]] for p in positions])

    def keys_count(self, positions: Sequence[int]) -> int:
        return int(sum(self.offsets[p + 1] - self.offsets[p] for p in positions))


def _numeric(values: pa.Array) -> np.ndarray:
    """Integers as int64 (literals of any size compare without overflow), floats in their own
    width (a FLOAT field is compared in float32, as the filter's constants are), booleans."""
    kind = values.type
    if pa.types.is_boolean(kind):
        return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.bool_)
    if pa.types.is_floating(kind):
        return np.asarray(values.to_numpy(zero_copy_only=False))
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.int64)
