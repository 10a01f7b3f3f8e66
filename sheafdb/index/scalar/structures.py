"""The four scalar index structures of a sealed segment, and what each answers.

- ``SortedIndex`` (INVERTED, STL_SORT, TRIE; JSON path indexes): ``Postings`` of the values;
  equality, ``in``, ranges, and prefixes of text.
- ``BitmapIndex`` (BITMAP; AUTOINDEX / HYBRID on a low-cardinality field): one roaring bitmap
  (pyroaring) per distinct value; equality and ``in`` are a union of bitmaps.
- ``ElementIndex`` (INVERTED, BITMAP or AUTOINDEX on an ARRAY field; a JSON path cast to
  ARRAY_*): ``Postings`` of the arrays' elements, each row listed once per distinct element it
  holds; ``array_contains`` / ``json_contains``, their ``_any`` (a union of rows) and ``_all``
  (an intersection).
- ``NgramIndex`` (NGRAM): ``Postings`` of every ``min_gram``..``max_gram`` character gram of
  the text; a ``like`` literal's grams intersect to candidate rows, which the caller verifies
  against the text (a candidate holds every gram of the literal, not always the literal).

Every answer is the ascending-or-not row positions the predicate holds for, or None when the
structure cannot answer that question or when the answer would hold more than ``limit`` rows
(then a column scan is as cheap, and the caller scans). Null rows never answer; ``valid``
(None: no nulls) lets the caller keep Milvus's three-valued results. Read-only once built.
"""

from __future__ import annotations

import array
import math
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pyroaring import BitMap

from sheafdb.index.scalar.postings import Postings

# AUTOINDEX / HYBRID build a bitmap per segment when a field has at most this many distinct
# values there (Milvus's default bitmap_cardinality_limit), else sorted postings.
HYBRID_BITMAP_CARDINALITY = 100


def non_null(column: pa.Array) -> tuple[pa.Array, np.ndarray, np.ndarray | None]:
    """The values that can be keys (not null, not NaN), their rows, and the valid mask."""
    valid = None if column.null_count == 0 else np.asarray(column.is_valid().to_numpy(zero_copy_only=False))
    keep = valid if valid is not None else np.ones(len(column), dtype=bool)
    if pa.types.is_floating(column.type):
        keep = keep & ~np.asarray(pc.fill_null(pc.is_nan(column), False).to_numpy(zero_copy_only=False))
    rows = np.flatnonzero(keep)
    values = column if len(rows) == len(column) else column.filter(pa.array(keep))
    return values, rows, valid


def key_value(value: object, text: bool, key_dtype: np.dtype | None) -> object | None:
    """``value`` in the keys' domain, or None when it cannot be compared with them here."""
    if text:
        return value if isinstance(value, str) else None
    if key_dtype is not None and key_dtype.kind == "b":
        return value if isinstance(value, bool) else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    if key_dtype is not None and key_dtype.kind == "f":
        return key_dtype.type(value)  # compared in the field's width, as the scan does
    if key_dtype is not None and key_dtype.kind == "i" and isinstance(value, float):
        if not math.isfinite(value):
            return value
        return int(value) if value.is_integer() else value
    return value


class SortedIndex:
    kind = "sorted"

    def __init__(self, postings: Postings, valid: np.ndarray | None) -> None:
        self.postings = postings
        self.valid = valid
        self.num_rows = postings.num_rows

    @classmethod
    def build(cls, column: pa.Array) -> SortedIndex:
        values, rows, valid = non_null(column)
        return cls(Postings.build(values, rows, len(column)), valid)

    @property
    def nbytes(self) -> int:
        return self.postings.nbytes + (0 if self.valid is None else int(self.valid.nbytes))

    def _domain(self, value: object) -> object | None:
        keys = self.postings.keys
        return key_value(value, self.postings.is_text, None if isinstance(keys, pa.Array) else keys.dtype)

    def rows_equal(self, values: Sequence[object], limit: int) -> np.ndarray | None:
        wanted = []
        for value in values:
            key = self._domain(value)
            if key is None:
                return None
            if isinstance(key, float) and not self.postings.is_text and self.postings.keys.dtype.kind == "i":
                continue  # a non-integral number equals no integer
            wanted.append(key)
        positions = self.postings.equal_keys(list(dict.fromkeys(wanted)))
        if self.postings.keys_count(positions) > limit:
            return None
        return self.postings.keys_rows(positions)

    def rows_range(
        self, low: object | None, low_inclusive: bool, high: object | None, high_inclusive: bool, limit: int
    ) -> np.ndarray | None:
        bounds = [b if b is None else self._domain(b) for b in (low, high)]
        if any(b is None and given is not None for b, given in zip(bounds, (low, high), strict=True)):
            return None
        if not self.postings.is_text and self.postings.keys.dtype.kind == "b":
            return None  # booleans have no order in the filter language
        if any(isinstance(b, (float, np.floating)) and math.isnan(b) for b in bounds):
            return np.empty(0, dtype=np.int64)
        first, last = self.postings.key_span(bounds[0], low_inclusive, bounds[1], high_inclusive)
        if self.postings.span_count(first, last) > limit:
            return None
        return self.postings.span_rows(first, last)

    def rows_prefix(self, prefix: str, limit: int) -> np.ndarray | None:
        if not self.postings.is_text:
            return None
        first, last = self.postings.prefix_span(prefix)
        if self.postings.span_count(first, last) > limit:
            return None
        return self.postings.span_rows(first, last)

    def rows_containing(self, literals: Sequence[str], limit: int) -> np.ndarray | None:
        return None

    def rows_with_elements(self, values: Sequence[object], every: bool, limit: int) -> np.ndarray | None:
        return None


class ElementIndex:
    """``token_prefix`` (JSON path indexes cast to ARRAY_*): the elements are the JSON list
    view's type-tagged tokens, only those of the cast's kind are posted, and only questions
    about values of that kind are answered (the others would need the elements left out)."""

    kind = "elements"

    def __init__(self, postings: Postings, valid: np.ndarray | None, token_prefix: str = "") -> None:
        self.postings = postings
        self.valid = valid
        self.num_rows = postings.num_rows
        self.token_prefix = token_prefix

    @classmethod
    def build(cls, column: pa.Array, token_prefix: str = "") -> ElementIndex:
        """Postings from each element value to the rows whose array holds it (null arrays and
        null or NaN elements hold nothing; ``valid`` keeps the null arrays)."""
        valid = (
            None if column.null_count == 0 else np.asarray(column.is_valid().to_numpy(zero_copy_only=False))
        )
        flat = pc.list_flatten(column)
        owners = np.asarray(pc.list_parent_indices(column).to_numpy(zero_copy_only=False), dtype=np.int64)
        values, kept, _ = non_null(flat)
        owners = owners[kept]
        if token_prefix:
            of_kind = pc.starts_with(values, token_prefix)
            values, owners = (
                values.filter(of_kind),
                owners[np.asarray(of_kind.to_numpy(zero_copy_only=False))],
            )
            valid = None  # a JSON list view's answer is two-valued
        postings = Postings.build(values, owners, len(column))
        return cls(_deduplicated(postings), valid, token_prefix)

    @property
    def nbytes(self) -> int:
        return self.postings.nbytes + (0 if self.valid is None else int(self.valid.nbytes))

    def rows_with_elements(self, values: Sequence[object], every: bool, limit: int) -> np.ndarray | None:
        """Rows whose array holds any (``every``: all) of ``values``; None to scan."""
        keys = self.postings.keys
        key_dtype = None if isinstance(keys, pa.Array) else keys.dtype
        wanted = []
        for value in values:
            key = key_value(value, self.postings.is_text, key_dtype)
            if key is None or not str(key).startswith(self.token_prefix):
                return None
            wanted.append(key)
        unique = list(dict.fromkeys(wanted))
        positions = self.postings.equal_keys(unique)
        if every:
            if len(positions) < len(unique):
                return np.empty(0, dtype=np.int64)
            runs = sorted((self.postings.keys_rows([p]) for p in positions), key=len)
            if not runs or len(runs[0]) > limit:
                return None
            found = runs[0]
            for run in runs[1:]:
                found = np.intersect1d(found, run, assume_unique=True)
            return found
        if self.postings.keys_count(positions) > self.num_rows:
            return None  # more postings than rows: the scan is cheaper
        found = np.unique(self.postings.keys_rows(positions))
        return None if len(found) > limit else found

    def rows_equal(self, values: Sequence[object], limit: int) -> np.ndarray | None:
        return None

    def rows_range(
        self, low: object | None, low_inclusive: bool, high: object | None, high_inclusive: bool, limit: int
    ) -> np.ndarray | None:
        return None

    def rows_prefix(self, prefix: str, limit: int) -> np.ndarray | None:
        return None

    def rows_containing(self, literals: Sequence[str], limit: int) -> np.ndarray | None:
        return None


class BitmapIndex:
    kind = "bitmap"

    def __init__(
        self, keys: np.ndarray | pa.Array, bitmaps: list[BitMap], valid: np.ndarray | None, num_rows: int
    ):
        self.keys = keys
        self.bitmaps = bitmaps
        self.valid = valid
        self.num_rows = num_rows
        self._text = isinstance(keys, pa.Array)
        # Value -> position: a bitmap index holds few distinct values, a dict is the lookup.
        listed = keys.to_pylist() if isinstance(keys, pa.Array) else keys.tolist()
        self._position = {value: i for i, value in enumerate(listed)}
        self._bitmap_bytes = sum(_bitmap_bytes(b) for b in bitmaps)

    @classmethod
    def from_postings(cls, postings: Postings, valid: np.ndarray | None) -> BitmapIndex:
        bitmaps = [
            BitMap(array.array("I", postings.span_rows(i, i + 1).astype(np.uint32).tobytes()))
            for i in range(postings.cardinality)
        ]
        return cls(postings.keys, bitmaps, valid, postings.num_rows)

    @classmethod
    def build(cls, column: pa.Array) -> BitmapIndex:
        values, rows, valid = non_null(column)
        return cls.from_postings(Postings.build(values, rows, len(column)), valid)

    @property
    def nbytes(self) -> int:
        keys = self.keys.nbytes if isinstance(self.keys, pa.Array) else int(self.keys.nbytes)
        return int(keys + self._bitmap_bytes + (0 if self.valid is None else self.valid.nbytes))

    def rows_equal(self, values: Sequence[object], limit: int) -> np.ndarray | None:
        key_dtype = None if isinstance(self.keys, pa.Array) else self.keys.dtype
        chosen = []
        for value in values:
            key = key_value(value, self._text, key_dtype)
            if key is None:
                return None
            at = self._position.get(key)  # key_value let only comparable values through
            if at is not None:
                chosen.append(self.bitmaps[at])
        if not chosen:
            return np.empty(0, dtype=np.uint32)
        union = BitMap.union(*chosen) if len(chosen) > 1 else chosen[0]
        if len(union) > limit:
            return None
        return np.frombuffer(union.to_array(), dtype=np.uint32)

    def rows_range(
        self, low: object | None, low_inclusive: bool, high: object | None, high_inclusive: bool, limit: int
    ) -> np.ndarray | None:
        return None  # Milvus's bitmap answers membership; ranges scan

    def rows_prefix(self, prefix: str, limit: int) -> np.ndarray | None:
        return None

    def rows_containing(self, literals: Sequence[str], limit: int) -> np.ndarray | None:
        return None

    def rows_with_elements(self, values: Sequence[object], every: bool, limit: int) -> np.ndarray | None:
        return None


class NgramIndex:
    kind = "ngram"

    def __init__(self, grams: Postings, min_gram: int, max_gram: int, valid: np.ndarray | None) -> None:
        self.grams = grams
        self.min_gram = min_gram
        self.max_gram = max_gram
        self.valid = valid
        self.num_rows = grams.num_rows

    @classmethod
    def build(cls, column: pa.Array, min_gram: int, max_gram: int) -> NgramIndex:
        values, rows, valid = non_null(column)
        lengths = np.asarray(pc.utf8_length(values).to_numpy(zero_copy_only=False), dtype=np.int64)
        gram_parts: list[pa.Array] = []
        row_parts: list[np.ndarray] = []
        for size in range(min_gram, max_gram + 1):
            longest = int(lengths.max()) if len(lengths) else 0
            for start in range(0, longest - size + 1):
                holding = np.flatnonzero(lengths >= start + size)
                texts = values.take(pa.array(holding)) if len(holding) < len(values) else values
                gram_parts.append(pc.utf8_slice_codeunits(texts, start, start + size))
                row_parts.append(rows[holding])
        if gram_parts:
            grams = pa.concat_arrays([g.cast(pa.string()) for g in gram_parts])
            gram_rows = np.concatenate(row_parts)
        else:
            grams, gram_rows = pa.array([], pa.string()), np.empty(0, dtype=np.int64)
        postings = Postings.build(grams, gram_rows, len(column))
        # A row holds a gram at several places: keep each (gram, row) once, rows ascending.
        return cls(_deduplicated(postings), min_gram, max_gram, valid)

    @property
    def nbytes(self) -> int:
        return self.grams.nbytes + (0 if self.valid is None else int(self.valid.nbytes))

    def rows_equal(self, values: Sequence[object], limit: int) -> np.ndarray | None:
        return None

    def rows_range(
        self, low: object | None, low_inclusive: bool, high: object | None, high_inclusive: bool, limit: int
    ) -> np.ndarray | None:
        return None

    def rows_prefix(self, prefix: str, limit: int) -> np.ndarray | None:
        return None  # grams give candidates, not answers: ``like`` verifies them

    def rows_containing(self, literals: Sequence[str], limit: int) -> np.ndarray | None:
        """Candidate rows holding every literal's grams; None when no literal is long enough."""
        candidates: np.ndarray | None = None
        for literal in literals:
            if len(literal) < self.min_gram:
                continue
            size = min(len(literal), self.max_gram)
            for start in range(0, len(literal) - size + 1):
                positions = self.grams.equal_keys([literal[start : start + size]])
                rows = self.grams.keys_rows(positions)
                if candidates is not None:
                    rows = np.intersect1d(candidates, rows, assume_unique=True)
                candidates = rows
                if len(candidates) == 0:
                    return candidates
        if candidates is None or len(candidates) > limit:
            return None
        return candidates

    def rows_with_elements(self, values: Sequence[object], every: bool, limit: int) -> np.ndarray | None:
        return None


def _bitmap_bytes(bitmap: BitMap) -> int:
    stats = bitmap.get_statistics()
    containers = ("n_bytes_array_containers", "n_bytes_bitset_containers", "n_bytes_run_containers")
    return int(sum(stats[name] for name in containers))  # type: ignore[literal-required]


def _deduplicated(postings: Postings) -> Postings:
    counts = np.diff(postings.offsets)
    key_of_row = np.repeat(np.arange(len(counts)), counts)
    order = np.lexsort((postings.rows, key_of_row))
    rows, keys = postings.rows[order], key_of_row[order]
    keep = np.ones(len(rows), dtype=bool)
    keep[1:] = (rows[1:] != rows[:-1]) | (keys[1:] != keys[:-1])
    rows, keys = rows[keep], keys[keep]
    offsets = np.searchsorted(keys, np.arange(len(counts) + 1), "left").astype(np.int64)
    return Postings(postings.keys, offsets, rows, postings.num_rows)
