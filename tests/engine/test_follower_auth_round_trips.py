"""A cluster query worker's read with authentication on costs one PostgreSQL round trip: the
log's tail, the catalog's change counter and the credentials' change counter in one
statement (storage/pg_log.py), the privilege checked after it (api/cluster/worker_service.py).
Counted on the wire: the worker's follower and credential store reach PostgreSQL through a
TCP relay (tests/net_faults.py) that counts what its clients send. A revoked privilege, a
changed password and a new write are each seen by the very next call."""

from __future__ import annotations

import base64
import pickle
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import grpc
import psycopg
import pytest

from sheafdb.api.cluster.worker_service import WorkerService
from sheafdb.engine.access import AccessControl
from sheafdb.engine.distribution.read_calls import READ_METHOD, SECRET_METADATA_KEY, ReadAnswer, ReadCall
from sheafdb.engine.engine import Engine
from sheafdb.engine.follower import Follower, FollowerConfig
from sheafdb.engine.models import LoadState, QueryRequest
from sheafdb.errors import SheafError
from sheafdb.storage.credentials import open_credentials
from tests.net_faults import Relay

pytestmark = pytest.mark.cluster

DB = "default"
SECRET = 7


@dataclass
class World:
    primary: Engine
    writer_access: AccessControl
    relay: Relay
    service: WorkerService


@pytest.fixture
def world(postgres_database: str, open_engine: Callable[..., Engine], kit) -> Iterator[World]:  # type: ignore[no-untyped-def]
    primary = open_engine(share_pages=True, compaction_min_segments=None, catalog_url=postgres_database)
    writer_access = AccessControl(open_credentials(postgres_database, primary.config.data_dir), enabled=True)
    primary.create_collection(DB, "c", kit.basic_schema())
    primary.create_index(DB, "c", "vec", "", {"index_type": "FLAT", "metric_type": "L2"})
    primary.load_collection(DB, "c")
    assert primary.wait_for_load(DB, "c", timeout=30) is LoadState.LOADED
    writer_access.create_user("bob", "bob-password")
    writer_access.create_role("reader")
    writer_access.grant_role("bob", "reader")
    writer_access.grant("reader", "Collection", "c", "Query", DB, "root")

    url = psycopg.conninfo.conninfo_to_dict(postgres_database)
    relay = Relay((str(url["host"]), int(str(url["port"]))))
    relayed = postgres_database.replace(f":{url['port']}/", f":{relay.port}/")
    # The worker's side, as worker_runtime.py wires it: the follower's statements carry the
    # credentials' counter to the access control.
    follower = Follower(FollowerConfig(primary.config.data_dir, relayed))
    access = AccessControl(open_credentials(relayed, primary.config.data_dir, read_only=True), enabled=True)
    follower.on_credential_counter = access.saw_store_version

    def answer(call: ReadCall) -> ReadAnswer:
        assert isinstance(call.request, QueryRequest)
        try:
            return ReadAnswer(follower.query(call.db, call.request))
        except SheafError as exc:
            return ReadAnswer(None, exc.code, exc.message)

    service = WorkerService(answer, lambda: SECRET, access=access, max_workers=2)
    service.start()
    yield World(primary, writer_access, relay, service)
    service.stop()
    follower.close()
    access.close()
    writer_access.close()
    relay.close()


def _count(world: World, user: str, password: str) -> int:
    call = ReadCall("query", DB, QueryRequest("c", output_fields=("count(*)",)), 1, 0)
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    metadata = [(SECRET_METADATA_KEY, str(SECRET)), ("authorization", token)]
    with grpc.insecure_channel(world.service.address) as channel:
        raw = channel.unary_unary(READ_METHOD)(pickle.dumps(call), metadata=metadata, timeout=30)
    answer = pickle.loads(raw)
    assert isinstance(answer, ReadAnswer) and answer.error_code == 0, answer
    return int(answer.result.table.column(0)[0].as_py())  # type: ignore[union-attr]


def _refused(world: World, user: str, password: str) -> grpc.StatusCode:
    with pytest.raises(grpc.RpcError) as caught:
        _count(world, user, password)
    return caught.value.code()  # type: ignore[attr-defined, no-any-return]


def test_one_round_trip_per_call_with_auth_and_changes_seen_at_once(world: World, kit) -> None:  # type: ignore[no-untyped-def]
    world.primary.insert(DB, "c", kit.make_rows(range(10)))
    for _ in range(6):  # psycopg prepares a statement on its 5th run: one round trip, once
        for user, password in (("root", "Milvus"), ("bob", "bob-password")):
            assert _count(world, user, password) == 10
    for user, password in (("root", "Milvus"), ("bob", "bob-password")):
        before = world.relay.sends
        for i in range(10):
            assert _count(world, user, password) == 10 + i
            world.primary.insert(DB, "c", kit.make_rows([100 + i], seed=i))  # seen by the next call
        assert world.relay.sends - before == 10, user  # one statement per call
        world.primary.delete(DB, "c", f"id in {list(range(100, 110))}")

    # A revoked privilege holds from the next call on; granted again, the same.
    world.writer_access.revoke("reader", "Collection", "c", "Query", DB)
    assert _refused(world, "bob", "bob-password") is grpc.StatusCode.PERMISSION_DENIED
    world.writer_access.grant("reader", "Collection", "c", "Query", DB, "root")
    assert _count(world, "bob", "bob-password") == 10
    # A changed password: the old one is refused at the next call, the new one served.
    world.writer_access.update_password("bob", "bob-password", "bob-new-password")
    assert _refused(world, "bob", "bob-password") is grpc.StatusCode.UNAUTHENTICATED
    assert _count(world, "bob", "bob-new-password") == 10
    world.writer_access.drop_user("bob")
    assert _refused(world, "bob", "bob-new-password") is grpc.StatusCode.UNAUTHENTICATED
