"""PkLookup: compact primary-key index of a loaded segment, checked against a plain scan."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
from hypothesis import given, settings
from hypothesis import strategies as st

from sheafdb.engine.load.loaded_segment import PK_PREFIX_BYTES, PkLookup


def _scan(column: list[object], keys: list[object]) -> list[int]:
    wanted = set(keys)
    return [row for row, value in enumerate(column) if value in wanted]


# Short alphabets make shared prefixes, duplicates and trailing NULs likely.
_texts = st.text(alphabet=st.sampled_from(["a", "b", "\x00", "é", "€"]), max_size=6)
_long_texts = st.builds(lambda tail: "p" * PK_PREFIX_BYTES + tail, _texts)


@settings(max_examples=150, deadline=None)
@given(
    column=st.lists(st.one_of(_texts, _long_texts), max_size=40),
    keys=st.lists(st.one_of(_texts, _long_texts), max_size=8),
)
def test_varchar_lookup_matches_a_scan(column: list[str], keys: list[str]) -> None:
    lookup = PkLookup(pa.array(column, pa.string()))
    assert lookup.rows_of(keys).tolist() == _scan(column, keys)


@settings(max_examples=100, deadline=None)
@given(
    column=st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(-3, 3), max_size=40),
    keys=st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(-3, 3), max_size=8),
)
def test_int_lookup_matches_a_scan(column: list[int], keys: list[int]) -> None:
    lookup = PkLookup(pa.array(column, pa.int64()))
    assert lookup.rows_of(keys).tolist() == _scan(column, keys)


def test_varchar_keys_cost_bytes_not_four_per_character() -> None:
    n = 2000
    keys = pa.array([f"doc-{i:08d}" for i in range(n)])  # 12 ASCII bytes each
    lookup = PkLookup(keys)
    # 12 bytes per key and a 4-byte row; '<U12' alone took 48 bytes per key.
    assert lookup.nbytes == n * (12 + 4)
    assert lookup.rows_of(["doc-00001234", "doc-00001234", "nope"]).tolist() == [1234]


def test_one_long_key_does_not_widen_every_entry() -> None:
    keys = pa.array(["x" * 10_000, *(str(i) for i in range(100))])
    lookup = PkLookup(keys)
    assert lookup.nbytes <= 101 * (PK_PREFIX_BYTES + 4)
    assert lookup.rows_of(["x" * 10_000, "7"]).tolist() == [0, 8]
    assert lookup.rows_of(["x" * 9_999]).tolist() == []


def test_empty_segment_finds_nothing() -> None:
    assert PkLookup(pa.array([], pa.string())).rows_of(["a"]).tolist() == []
    assert np.array_equal(PkLookup(pa.array([], pa.int64())).rows_of([1]), np.empty(0, np.int64))
