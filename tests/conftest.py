"""Fixtures every test directory may use: the cluster tests' services (tests/services.py).

They start once per session, only when a test marked ``cluster`` asks for them.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from sheafdb.storage.catalog import Catalog, open_catalog
from tests.services import S3Server, start_service, stop_service


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A running PostgreSQL server's URL (its ``postgres`` database)."""
    state_dir = start_service("postgres")
    try:
        yield (state_dir / "url").read_text().strip()
    finally:
        stop_service("postgres", state_dir)


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """The URL of a new, empty database of that server, dropped after the test."""
    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield postgres_url.rsplit("/", 1)[0] + "/" + name
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def catalogs(postgres_database: str, tmp_path: Path) -> Iterator[Callable[[], Catalog]]:
    """Opens catalog connections to ``postgres_database`` (each as another process would:
    the first makes the tables), closed after the test."""
    opened: list[Catalog] = []

    def _open() -> Catalog:
        cat = open_catalog(postgres_database, tmp_path)
        opened.append(cat)
        return cat

    yield _open
    for cat in opened:
        cat.close()


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """A running S3-compatible server (SeaweedFS)."""
    state_dir = start_service("s3")
    try:
        yield S3Server.from_state(state_dir)
    finally:
        stop_service("s3", state_dir)
