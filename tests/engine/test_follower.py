"""A query worker's read path (engine/follower.py) following a real primary engine on the
same backends (the data directory; or PostgreSQL and S3, marked ``cluster``): every
acknowledged write is read (Strong), seals, compactions, index builds, drops and releases
are followed, and loads map the primary's files (or the worker's cached copies)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sheafdb.engine.engine import Engine
from sheafdb.engine.follower import Follower, FollowerConfig
from sheafdb.engine.models import LoadState, QueryRequest, SearchRequest
from sheafdb.errors import CollectionNotFound, CollectionNotLoaded

DB = "default"
HNSW = {"index_type": "HNSW", "metric_type": "L2", "M": "8", "efConstruction": "32"}


@pytest.fixture(params=["embedded", pytest.param("postgres+s3", marks=pytest.mark.cluster)])
def backends(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """The primary's remote backends: none (the data dir), or PostgreSQL and S3."""
    if request.param == "embedded":
        return {}
    s3 = request.getfixturevalue("s3_server")
    monkeypatch = request.getfixturevalue("monkeypatch")
    for key, value in s3.credentials_env().items():
        monkeypatch.setenv(key, value)
    # The session's shared bucket (each new bucket costs the server volumes), a prefix of its own.
    prefix = f"follow-{uuid.uuid4().hex}"
    return {
        "catalog_url": request.getfixturevalue("postgres_database"),
        "objects_url": s3.url("sheafdb-store-tests", prefix) + "&allow_bucket_creation=true",
    }


@pytest.fixture
def primary(backends: dict[str, str], open_engine: Callable[..., Engine]) -> Engine:
    return open_engine(share_pages=True, compaction_min_segments=None, **backends)


@pytest.fixture
def follower(primary: Engine, backends: dict[str, str], tmp_path: Path) -> Iterator[Follower]:
    if backends:  # its own cache dir, as on another machine
        config = FollowerConfig(tmp_path / "worker", backends["catalog_url"], backends["objects_url"])
    else:
        config = FollowerConfig(primary.config.data_dir)
    worker = Follower(config)
    yield worker
    worker.close()


def _count(reader: Engine | Follower) -> int:
    return int(reader.query(DB, QueryRequest("c", output_fields=("count(*)",))).table.column(0)[0].as_py())


def _loaded(primary: Engine, kit) -> None:  # type: ignore[no-untyped-def]
    primary.create_collection(DB, "c", kit.basic_schema())
    primary.create_index(DB, "c", "vec", "", HNSW)
    primary.load_collection(DB, "c")
    assert primary.wait_for_load(DB, "c", timeout=30) is LoadState.LOADED


def test_every_acknowledged_write_is_read(primary: Engine, follower: Follower, kit) -> None:  # type: ignore[no-untyped-def]
    _loaded(primary, kit)
    for i in range(60):
        primary.insert(DB, "c", kit.make_rows([i], seed=i))
        if i % 7 == 6:  # seals (and log trims) along the way
            primary.flush(DB, ["c"])
        got = follower.query(DB, QueryRequest("c", ids=[i], output_fields=("id", "tag")))
        assert got.table.column("id").to_pylist() == [i]
        assert _count(follower) == i + 1
    primary.delete(DB, "c", "id in [0, 1, 2]")
    assert _count(follower) == 57
    assert primary.wait_for_index_builds(timeout=60)
    assert len(primary._resolve(DB, "c").snapshot().sealed) > 1
    vec = kit.make_rows([10], seed=10).column("vec").to_numpy(zero_copy_only=False)[0]
    hits = follower.search(DB, SearchRequest("c", vec.reshape(1, -1), 1)).ids.to_pylist()
    assert hits == [10]


def test_compaction_release_and_drop_are_followed(primary: Engine, follower: Follower, kit) -> None:  # type: ignore[no-untyped-def]
    _loaded(primary, kit)
    for start in range(0, 40, 10):
        primary.insert(DB, "c", kit.make_rows(range(start, start + 10), seed=start))
        primary.flush(DB, ["c"])
    primary.wait_for_index_builds(timeout=60)
    before = len(primary._resolve(DB, "c").snapshot().sealed)
    primary.compact(DB, "c")
    assert len(primary._resolve(DB, "c").snapshot().sealed) < before
    assert _count(follower) == 40
    assert follower.load_state(DB, "c") is LoadState.LOADED
    primary.release_collection(DB, "c")
    with pytest.raises(CollectionNotLoaded):
        _count(follower)
    primary.load_collection(DB, "c")
    assert _count(follower) == 40
    primary.drop_collection(DB, "c")
    with pytest.raises(CollectionNotFound):
        _count(follower)


def test_worker_maps_what_it_loads(primary: Engine, follower: Follower, kit) -> None:  # type: ignore[no-untyped-def]
    _loaded(primary, kit)
    primary.insert(DB, "c", kit.make_rows(range(100)))
    primary.flush(DB, ["c"])
    primary.wait_for_index_builds(timeout=60)
    assert _count(follower) == 100
    kinds = _kinds(follower)
    assert ("mapped", "vec") in kinds and ("field", "vec") not in kinds, kinds


def _kinds(follower: Follower) -> set[tuple[str, str]]:
    runtime = next(iter(follower._loads._runtimes.values()))
    return {key for segment in runtime.view.segments.values() for key in segment.footprint}


def test_a_partition_made_after_the_last_read_is_read_at_once(
    primary: Engine, follower: Follower, kit
) -> None:  # type: ignore[no-untyped-def]
    """The read resolves names in the catalog as last taken; one it does not find there is
    looked for again in the catalog as it is now (Strong for DDL too)."""
    _loaded(primary, kit)
    primary.insert(DB, "c", kit.make_rows([1]))
    assert _count(follower) == 1
    primary.create_partition(DB, "c", "p")
    primary.insert(DB, "c", kit.make_rows([2]), partition="p")
    got = follower.query(DB, QueryRequest("c", ids=[2], partition_names=("p",), output_fields=("id",)))
    assert got.table.column("id").to_pylist() == [2]
