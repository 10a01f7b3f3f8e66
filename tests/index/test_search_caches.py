"""What an index keeps between searches (faiss SearchParameters, selectors of frozen masks,
parsed search params) never changes an answer."""

from __future__ import annotations

import numpy as np
import pytest

from sheafdb.errors import ParameterInvalid
from sheafdb.index import build_index, parse_index_params, parse_search_params
from sheafdb.schema import DataType, FieldSchema

from .index_oracle import clustered, dense_scores, recall, topk

DIM = 16
FIELD = FieldSchema("v", DataType.FLOAT_VECTOR, dim=DIM)
DATA = clustered(600, DIM, seed=3)
QUERIES = clustered(5, DIM, seed=4)


def frozen(mask: np.ndarray) -> np.ndarray:
    owned = np.array(mask, dtype=bool)
    owned.flags.writeable = False
    return owned


@pytest.mark.parametrize("index_type", ["FLAT", "HNSW", "IVF_FLAT"])
def test_frozen_masks_each_get_their_own_selector(index_type: str) -> None:
    spec = parse_index_params(FIELD, {"index_type": index_type, "metric_type": "L2", "nlist": "8"})
    index = build_index(spec, DATA)
    rng = np.random.default_rng(5)
    masks = [frozen(rng.random(len(DATA)) < share) for share in (0.5, 0.2, 0.5)]
    for _ in range(2):  # the second round reads every kept selector back
        for mask in masks:
            for params in ({"ef": 600, "nprobe": 8}, {"ef": 700, "nprobe": 8}):
                _, labels = index.search(QUERIES, 10, params, mask)
                assert mask[labels[labels >= 0]].all()
                assert recall(labels, topk("L2", dense_scores("L2", DATA, QUERIES), 10, mask)) > 0.9
    _, unfiltered = index.search(QUERIES, 10, {"ef": 600, "nprobe": 8}, None)
    assert (~masks[1][unfiltered]).any()  # the kept unfiltered parameters carry no selector


def test_a_writable_mask_is_read_fresh_each_time() -> None:
    spec = parse_index_params(FIELD, {"index_type": "HNSW", "metric_type": "L2"})
    index = build_index(spec, DATA)
    mask = np.zeros(len(DATA), dtype=bool)
    mask[:100] = True
    _, labels = index.search(QUERIES, 5, {"ef": 64}, mask)
    assert (labels < 100).all()
    mask[:] = False
    mask[500:] = True  # same object, new content: nothing kept may answer for it
    _, labels = index.search(QUERIES, 5, {"ef": 64}, mask)
    assert (labels >= 500).all()


def test_query_width_is_checked_before_faiss_reads_it() -> None:
    spec = parse_index_params(FIELD, {"index_type": "HNSW", "metric_type": "L2"})
    index = build_index(spec, DATA)
    with pytest.raises(ParameterInvalid, match="dimension mismatch"):
        index.search(np.zeros((1, DIM - 1), dtype=np.float32), 5, {"ef": 64}, None)


def test_parsed_search_params_are_kept_by_value_and_type() -> None:
    assert parse_search_params({"ef": 1}).ef == 1
    assert parse_search_params({"ef": 1}) is parse_search_params({"ef": 1})
    with pytest.raises(ParameterInvalid):
        parse_search_params({"ef": True})  # True == 1, yet not an ef
    assert parse_search_params({"ef": "7"}).ef == 7
    assert parse_search_params({"params": {"ef": 9}}).ef == 9  # unhashable: parsed every time
