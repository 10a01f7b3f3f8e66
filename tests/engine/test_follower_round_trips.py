"""A follower's Strong read on PostgreSQL costs one round trip when nothing changed: the log's
tail and the catalog's change counter in one statement (engine/follower.py). Counted on the
wire: the follower reaches PostgreSQL through a TCP relay (tests/net_faults.py) that counts
what its clients send; a change the primary commits is still seen by the next read."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pytest

from sheafdb.engine.engine import Engine
from sheafdb.engine.follower import Follower, FollowerConfig
from sheafdb.engine.models import LoadState, QueryRequest
from sheafdb.errors import CollectionNotLoaded
from tests.net_faults import Relay

pytestmark = pytest.mark.cluster

DB = "default"


@pytest.fixture
def world(
    postgres_database: str,
    s3_server,  # type: ignore[no-untyped-def]
    monkeypatch: pytest.MonkeyPatch,
    open_engine: Callable[..., Engine],
    tmp_path: Path,
) -> Iterator[tuple[Engine, Follower, Relay]]:
    for key, value in s3_server.credentials_env().items():
        monkeypatch.setenv(key, value)
    objects = (
        s3_server.url("sheafdb-store-tests", f"trips-{uuid.uuid4().hex}") + "&allow_bucket_creation=true"
    )
    primary = open_engine(
        share_pages=True, compaction_min_segments=None, catalog_url=postgres_database, objects_url=objects
    )
    url = psycopg.conninfo.conninfo_to_dict(postgres_database)
    relay = Relay((str(url["host"]), int(str(url["port"]))))
    relayed = postgres_database.replace(f":{url['port']}/", f":{relay.port}/")
    follower = Follower(FollowerConfig(tmp_path / "worker", relayed, objects))
    yield primary, follower, relay
    follower.close()
    relay.close()


def _count(follower: Follower) -> int:
    return int(follower.query(DB, QueryRequest("c", output_fields=("count(*)",))).table.column(0)[0].as_py())


def test_a_read_is_one_round_trip_and_still_strong(world: tuple[Engine, Follower, Relay], kit) -> None:  # type: ignore[no-untyped-def]
    primary, follower, relay = world
    primary.create_collection(DB, "c", kit.basic_schema())
    primary.create_index(DB, "c", "vec", "", {"index_type": "FLAT", "metric_type": "L2"})
    primary.load_collection(DB, "c")
    assert primary.wait_for_load(DB, "c", timeout=30) is LoadState.LOADED
    primary.insert(DB, "c", kit.make_rows(range(10)))
    assert _count(follower) == 10
    assert follower.load_state(DB, "c") is LoadState.LOADED

    for _ in range(6):  # psycopg prepares a statement on its 5th run: one round trip, once
        assert _count(follower) == 10
    before = relay.sends
    for i in range(20):
        assert _count(follower) == 10 + i
        primary.insert(DB, "c", kit.make_rows([100 + i], seed=i))  # seen by the next read
    assert relay.sends - before == 20  # one statement per read: the log's tail and the counter

    primary.flush(DB, ["c"])  # a seal: the catalog moved and the log was trimmed
    assert _count(follower) == 30
    primary.release_collection(DB, "c")  # a catalog change the names still resolve through
    with pytest.raises(CollectionNotLoaded):
        _count(follower)
