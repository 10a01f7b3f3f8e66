from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings

from sheafdb.schema import DYNAMIC_FIELD, TIMESTAMP_COLUMN
from sheafdb.storage.object_store import LocalStore
from sheafdb.storage.segment_files import (
    column_file_name,
    read_column,
    read_deletes,
    write_deletes,
    write_segment,
)

from .storage_tables import schemas_and_tables


@pytest.fixture
def store(tmp_path: Path) -> LocalStore:
    return LocalStore(tmp_path / "store")


_segment_numbers = itertools.count()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=schemas_and_tables())
def test_every_field_type_round_trips_exactly(store: LocalStore, data: tuple) -> None:
    _, table = data
    files = write_segment(store, f"seg/{next(_segment_numbers)}", table)
    assert set(files) == set(table.column_names)
    for name in table.column_names:
        for mmap in (True, False):
            column = read_column(store, files[name].path, mmap=mmap)
            assert column.type == table.schema.field(name).type
            assert column.equals(table.column(name)), name
        assert files[name].nbytes == store.size(files[name].path)


def test_column_file_names_are_safe_and_distinct() -> None:
    names = [DYNAMIC_FIELD, TIMESTAMP_COLUMN, "a/b", "..", ".", "é", "%24meta", "$META"]
    encoded = [column_file_name(n) for n in names]
    assert len(set(encoded)) == len(names)
    for file_name in encoded:
        assert "/" not in file_name and not file_name.startswith(".") and file_name.endswith(".arrow")
    assert column_file_name("vector") == "vector.arrow"


def test_segment_appears_only_complete(store: LocalStore) -> None:
    table = pa.table({"pk": pa.array([1, 2], pa.int64()), TIMESTAMP_COLUMN: pa.array([5, 6], pa.uint64())})
    files = write_segment(store, "c/1/seg", table)
    assert sorted(store.list("c/1")) == sorted(f.path for f in files.values())
    with pytest.raises(FileExistsError):
        write_segment(store, "c/1/seg", table)
    # The failed write left no temporary directory behind.
    assert sorted(store.list("c/1")) == sorted(f.path for f in files.values())


def test_mmap_read_is_zero_copy(store: LocalStore) -> None:
    vectors = np.arange(64 * 1024, dtype=np.float32).reshape(-1, 16)
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), 16)
    files = write_segment(store, "seg", pa.table({"v": column}))
    before = pa.total_allocated_bytes()
    mapped = read_column(store, files["v"].path, mmap=True)
    assert pa.total_allocated_bytes() - before < 64 * 1024  # the 256 KiB of floats were not copied
    values = mapped.chunk(0).values.to_numpy(zero_copy_only=True)
    assert np.array_equal(values, vectors.ravel())


def test_deletes_round_trip(store: LocalStore) -> None:
    pks = pa.array(["a", "b", "c"])
    timestamps = pa.array([3, 2, 1], pa.int64())
    nbytes = write_deletes(store, "c/1/deletes/1.arrow", pks, timestamps)
    assert nbytes == store.size("c/1/deletes/1.arrow")
    table = read_deletes(store, "c/1/deletes/1.arrow")
    assert table.column_names == ["pk", TIMESTAMP_COLUMN]
    assert table.column("pk").to_pylist() == ["a", "b", "c"]
    assert table.column(TIMESTAMP_COLUMN).type == pa.uint64()
    assert table.column(TIMESTAMP_COLUMN).to_pylist() == [3, 2, 1]


def test_deletes_accept_chunked_and_empty_columns(store: LocalStore) -> None:
    pks = pa.chunked_array([[1, 2], [3]], pa.int64())
    write_deletes(store, "d1.arrow", pks, pa.chunked_array([[5, 6], [7]], pa.uint64()))
    assert read_deletes(store, "d1.arrow").to_pydict() == {"pk": [1, 2, 3], TIMESTAMP_COLUMN: [5, 6, 7]}
    write_deletes(store, "d2.arrow", pa.chunked_array([], pa.int64()), pa.chunked_array([], pa.uint64()))
    assert read_deletes(store, "d2.arrow").num_rows == 0
