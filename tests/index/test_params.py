from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sheafdb.errors import ParameterInvalid, UnexpectedError
from sheafdb.index import IndexSpec, describe_index_params, parse_index_params, parse_search_params
from sheafdb.schema import DataType, FieldSchema

FLOAT = FieldSchema("v", DataType.FLOAT_VECTOR, dim=16)
FP16 = FieldSchema("h", DataType.FLOAT16_VECTOR, dim=16)
BINARY = FieldSchema("b", DataType.BINARY_VECTOR, dim=64)
SPARSE = FieldSchema("s", DataType.SPARSE_FLOAT_VECTOR)


def test_flattened_params_are_typed() -> None:
    spec = parse_index_params(
        FLOAT, {"index_type": "HNSW", "metric_type": "L2", "M": "16", "efConstruction": "200"}
    )
    assert spec == IndexSpec("HNSW", "L2", {"M": 16, "efConstruction": 200})


def test_params_json_is_merged() -> None:
    spec = parse_index_params(
        FLOAT, {"index_type": "IVF_FLAT", "metric_type": "IP", "params": '{"nlist": 64}'}
    )
    assert spec == IndexSpec("IVF_FLAT", "IP", {"nlist": 64})


def test_type_params_are_dropped() -> None:
    spec = parse_index_params(FLOAT, {"index_type": "FLAT", "metric_type": "L2", "dim": "16"})
    assert spec.params == {}


@pytest.mark.parametrize(
    ("field", "metric"), [(FLOAT, "COSINE"), (FP16, "COSINE"), (BINARY, "HAMMING"), (SPARSE, "IP")]
)
def test_default_metric_follows_milvus(field: FieldSchema, metric: str) -> None:
    assert parse_index_params(field, {"index_type": "AUTOINDEX"}).metric_type == metric


def test_missing_index_type_is_autoindex() -> None:
    assert parse_index_params(FLOAT, {"metric_type": "l2"}) == IndexSpec("AUTOINDEX", "L2", {})


def test_invalid_index_type() -> None:
    with pytest.raises(ParameterInvalid, match="invalid index type: NOPE") as info:
        parse_index_params(FLOAT, {"index_type": "NOPE"})
    assert info.value.code == 1100


@pytest.mark.parametrize(
    ("field", "params", "message"),
    [
        (FLOAT, {"index_type": "HNSW", "metric_type": "HAMMING"}, r"supported: \[L2 IP COSINE\]"),
        (
            BINARY,
            {"index_type": "BIN_FLAT", "metric_type": "L2"},
            r"supported: \[HAMMING JACCARD SUBSTRUCTURE SUPERSTRUCTURE\]",
        ),
        (
            BINARY,
            {"index_type": "BIN_IVF_FLAT", "metric_type": "SUBSTRUCTURE"},
            r"metric type SUBSTRUCTURE not found or not supported, supported: \[HAMMING JACCARD\]",
        ),
        (SPARSE, {"index_type": "SPARSE_INVERTED_INDEX", "metric_type": "L2"}, "only IP"),
        (FLOAT, {"index_type": "BIN_FLAT"}, "data type FloatVector can't build with this index BIN_FLAT"),
        (BINARY, {"index_type": "HNSW"}, "data type BinaryVector can't build"),
        (FLOAT, {"index_type": "HNSW", "M": "1"}, r"param 'M' \(1\) should be in range \[2, 2048\]"),
        (FLOAT, {"index_type": "HNSW", "M": "abc"}, "should be integer"),
        (FLOAT, {"index_type": "IVF_FLAT", "nlist": "0"}, "param 'nlist'"),
        (FLOAT, {"index_type": "IVF_PQ", "m": "3"}, "dimension must be able to be divided by `m`"),
        (FLOAT, {"index_type": "HNSW_SQ", "sq_type": "SQ9"}, "sq_type"),
        (FLOAT, {"index_type": "AUTOINDEX", "M": "8"}, "only metric type can be passed"),
        (SPARSE, {"index_type": "SPARSE_WAND", "drop_ratio_build": "1"}, "drop_ratio_build"),
        (FieldSchema("i", DataType.INT64), {"index_type": "HNSW"}, "can't build"),
    ],
)
def test_invalid_params(field: FieldSchema, params: dict[str, str], message: str) -> None:
    with pytest.raises(ParameterInvalid, match=message):
        parse_index_params(field, params)


def test_describe_reports_user_params_as_strings() -> None:
    spec = parse_index_params(FLOAT, {"index_type": "HNSW_SQ", "metric_type": "IP", "M": 8, "refine": "True"})
    assert describe_index_params(spec) == {
        "index_type": "HNSW_SQ",
        "metric_type": "IP",
        "M": "8",
        "refine": "true",
    }


@given(
    m=st.integers(2, 2048),
    ef=st.integers(1, 10_000),
    metric=st.sampled_from(["L2", "IP", "COSINE"]),
    index_type=st.sampled_from(["HNSW", "HNSW_SQ", "HNSW_PQ"]),
)
def test_describe_parse_round_trip(m: int, ef: int, metric: str, index_type: str) -> None:
    spec = parse_index_params(
        FLOAT, {"index_type": index_type, "metric_type": metric, "M": str(m), "efConstruction": ef}
    )
    assert parse_index_params(FLOAT, describe_index_params(spec)) == spec


def test_search_params() -> None:
    parsed = parse_search_params({"params": '{"ef": "32", "radius": 1.5}', "nprobe": 4})
    assert (parsed.ef, parsed.nprobe, parsed.radius, parsed.range_filter) == (32, 4, 1.5, None)
    assert parse_search_params({}).ef_for(5) == 16
    assert parse_search_params({}).ef_for(50) == 50
    with pytest.raises(UnexpectedError, match=r"ef\(8\) should be larger than k\(10\)"):
        parse_search_params({"ef": 8}).ef_for(10)
    with pytest.raises(ParameterInvalid, match="nprobe"):
        parse_search_params({"nprobe": 0})
