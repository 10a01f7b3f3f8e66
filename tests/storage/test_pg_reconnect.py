"""The PostgreSQL stores (catalog, log, credentials) outlive their connections: a session the
server ended (as a restart does) or a connection the network cut is replaced on the next use,
and an append whose fate the cut left unknown is settled at once (before the log takes another). A
write of a fenced (writer's) store whose commit answer is lost, or an append found committed
unacknowledged, is told to the store's ``on_commit_unknown`` (the writer then steps down).

The network faults are real: the stores reach PostgreSQL through a TCP relay that closes its
sockets (tests/net_faults.py); the server-side ends are PostgreSQL's own ``pg_terminate_backend``."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psycopg
import pyarrow as pa
import pytest

from sheafdb.errors import CommitOutcomeUnknown, MetaStoreUnavailable
from sheafdb.storage.catalog import open_catalog
from sheafdb.storage.credentials import open_credentials
from sheafdb.storage.lease_rows import WRITER_LEASE, Lease
from sheafdb.storage.log import open_log_store
from tests.net_faults import Relay

pytestmark = pytest.mark.cluster

CID = 7


def rows(*values: int) -> pa.Table:
    return pa.table({"id": pa.array(values, pa.int64())})


def replayed(url: str, tmp_path: Path) -> list[tuple[int, list[int]]]:
    """The log as a fresh store on a direct connection reads it."""
    store = open_log_store(url, tmp_path)
    try:
        log = store.open(CID)
        return [(r.lsn, r.batch.column("id").to_pylist()) for r in log.replay()]
    finally:
        store.close()


@pytest.fixture
def relay(postgres_database: str) -> Iterator[tuple[Relay, str]]:
    """A relay to the test's database and the URL that goes through it."""
    url = psycopg.conninfo.conninfo_to_dict(postgres_database)
    link = Relay((str(url["host"]), int(str(url["port"]))))
    yield link, postgres_database.replace(f":{url['port']}/", f":{link.port}/")
    link.close()


def test_sessions_the_server_ended_are_replaced_without_failing_a_call(
    postgres_database: str, tmp_path: Path
) -> None:
    catalog = open_catalog(postgres_database, tmp_path)
    credentials = open_credentials(postgres_database, tmp_path)
    logs = open_log_store(postgres_database, tmp_path)
    try:
        log = logs.open(CID)
        assert log.append("insert", 0, 1, rows(1)) == 1
        credentials.add_user("alice", "secret-1")
        identity = catalog.identity()
        with psycopg.connect(postgres_database, autocommit=True) as admin:  # what a restart does
            ended = admin.execute(
                "SELECT count(pg_terminate_backend(pid, 10000)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            ).fetchone()
        assert ended is not None and ended[0] >= 4  # catalog, credentials, the log's two
        # Each answers at once, on a new connection: the server said its statement never ran.
        assert log.append("insert", 0, 2, rows(2)) == 2
        assert catalog.identity() == identity
        catalog.allocate_id()
        assert credentials.add_user("bob", "secret-2")
        assert sorted(credentials.users()) == ["alice", "bob"]
        assert [r.lsn for r in log.replay()] == [1, 2]
    finally:
        logs.close()
        credentials.close()
        catalog.close()


def test_connections_the_network_cut_are_replaced_and_an_unanswered_append_is_settled(
    relay: tuple[Relay, str], postgres_database: str, tmp_path: Path
) -> None:
    link, url = relay
    catalog = open_catalog(url, tmp_path)
    credentials = open_credentials(url, tmp_path)
    logs = open_log_store(url, tmp_path)
    try:
        log = logs.open(CID)
        assert log.append("insert", 0, 1, rows(1)) == 1
        identity = catalog.identity()
        link.cut()
        # Reads and transactions begin again on a new connection: their first statement is
        # harmless to send twice.
        assert catalog.identity() == identity
        catalog.allocate_id()
        assert credentials.add_user("alice", "secret-1")
        assert [r.lsn for r in log.replay()] == [1]
        # An append into silence may have committed: it fails (code 2, a client retries) ...
        with pytest.raises(MetaStoreUnavailable) as failed:
            log.append("insert", 0, 2, rows(2))
        assert failed.value.code == 2
        # ... and is settled (by the log's own thread, or by the next append first): it did
        # not commit (its lsn stays a gap), and appends go on.
        assert log.append("insert", 0, 3, rows(3)) == 3
        assert replayed(postgres_database, tmp_path) == [(1, [1]), (3, [3])]
    finally:
        logs.close()
        credentials.close()
        catalog.close()


def test_an_append_committed_whose_answer_was_lost_stops_the_log_and_is_told(
    relay: tuple[Relay, str], postgres_database: str, tmp_path: Path
) -> None:
    link, url = relay
    open_catalog(postgres_database, tmp_path).close()  # the catalog makes the log's tables
    told: list[CommitOutcomeUnknown] = []
    logs = open_log_store(url, tmp_path, on_commit_unknown=told.append)
    try:
        log = logs.open(CID)
        assert log.append("insert", 0, 1, rows(1)) == 1
        link.lose_reply(b"INSERT INTO log_records", b"INSERT 0 1")
        with pytest.raises(MetaStoreUnavailable) as unanswered:
            log.append("insert", 0, 2, rows(2))
        assert not isinstance(unanswered.value, CommitOutcomeUnknown)
        # Settled at once, with no append after it: it committed, unacknowledged (the writer's
        # memory lacks it, so its own reads would miss it). Told once, and no append after it,
        # nor a repeat of it: the writer's successor recovers it.
        assert _eventually(lambda: len(told) == 1)
        with pytest.raises(CommitOutcomeUnknown) as stepped:
            log.append("insert", 0, 3, rows(3))
        assert stepped.value is told[0] and stepped.value.code == 2
        with pytest.raises(CommitOutcomeUnknown):
            log.append("insert", 0, 4, rows(4))
        assert len(told) == 1
        assert replayed(postgres_database, tmp_path) == [(1, [1]), (2, [2])]
    finally:
        logs.close()


def _eventually(condition: Callable[[], bool], limit_s: float = 60.0) -> bool:
    """Whether ``condition`` came true within a generous limit (polled; no time is asserted)."""
    deadline = time.monotonic() + limit_s
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _writer_lease(url: str, tmp_path: Path) -> Lease:
    election = open_catalog(url, tmp_path)
    try:
        lease = election.try_acquire_lease(WRITER_LEASE, "w:1", 60.0)
    finally:
        election.close()
    assert lease is not None
    return lease


def _databases(url: str, tmp_path: Path) -> list[str]:
    """The databases as a fresh catalog on a direct connection reads them."""
    catalog = open_catalog(url, tmp_path)
    try:
        return [db.name for db in catalog.list_databases()]
    finally:
        catalog.close()


def test_a_catalog_write_whose_commit_answer_was_lost_is_told_and_did_commit(
    relay: tuple[Relay, str], postgres_database: str, tmp_path: Path
) -> None:
    link, url = relay
    told: list[CommitOutcomeUnknown] = []
    catalog = open_catalog(url, tmp_path)
    catalog.set_fence(_writer_lease(postgres_database, tmp_path), told.append)
    try:
        link.lose_reply(b"INSERT INTO databases", b"COMMIT\x00")
        with pytest.raises(CommitOutcomeUnknown) as unknown:
            catalog.create_database("lost_answer", {}, 1)
        assert unknown.value.code == 2 and told == [unknown.value]
        # The truth is the database's: it committed (only a recovery from it knows).
        assert "lost_answer" in _databases(postgres_database, tmp_path)
        # A write cut before its COMMIT surely did not commit: an ordinary outage error.
        link.lose_reply(b"INSERT INTO databases", b"INSERT 0 1")
        with pytest.raises(MetaStoreUnavailable) as cut:
            catalog.create_database("never", {}, 2)
        assert not isinstance(cut.value, CommitOutcomeUnknown) and len(told) == 1
        # Its server session, idle in its transaction, ends when the network does (the relay
        # keeps it open: as TCP keepalives would, end it), rolling back.
        link.cut()
        assert "never" not in _databases(postgres_database, tmp_path)
    finally:
        catalog.close()


def test_a_credential_change_whose_commit_answer_was_lost_is_told(
    relay: tuple[Relay, str], postgres_database: str, tmp_path: Path
) -> None:
    link, url = relay
    told: list[CommitOutcomeUnknown] = []
    lease = _writer_lease(postgres_database, tmp_path)
    credentials = open_credentials(url, tmp_path, fence=lease, on_commit_unknown=told.append)
    try:
        link.lose_reply(b"INSERT INTO users", b"COMMIT\x00")
        with pytest.raises(CommitOutcomeUnknown):
            credentials.add_user("alice", "secret-1")
        assert len(told) == 1
        assert "alice" in credentials.users()  # it committed
    finally:
        credentials.close()
