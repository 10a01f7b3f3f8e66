"""Users, roles, grants and privilege groups: an embedded SQLite file, or the cluster's PostgreSQL.

Kept apart from the catalog so that access control can be turned on for an existing data
directory (and its file copied or reset) without touching collection metadata. Passwords are
stored only as a random salt and a scrypt hash.

Two backends, one SQL (``CredentialStore``): ``SqliteCredentialStore``, the file
``credentials.db`` in the data dir (a single server, and the ``--workers`` followers that share
its dir), and ``PostgresCredentialStore`` (pg_credentials.py), the same tables in the catalog's
PostgreSQL database, so the writer, its standbys, followers and query workers on other machines
all see one set of users. ``open_credentials`` picks one from the catalog url.

Concurrency: one connection shared by every thread, guarded by ``_lock``: a connection is not
safe for concurrent use and every method is a single short transaction, so a plain mutex costs
nothing measurable.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import sqlite3
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from sheafdb.storage.change_counter import ChangeCounter, Slot
from sheafdb.storage.lease_rows import CommitListener, Lease

# scrypt cost: ~16 MiB and a few tens of ms per hash; verified logins are cached above us.
_SCRYPT_N = 2**14
_SCRYPT_R = 8
_SCRYPT_P = 1
_SALT_BYTES = 16

CREDENTIALS_FILE = "credentials.db"
POSTGRES_SCHEMES = ("postgresql://", "postgres://")

# ``user`` is quoted: a reserved word in PostgreSQL (SQLite takes the quotes too).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY, salt BLOB NOT NULL, hash BLOB NOT NULL, created_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS roles (name TEXT PRIMARY KEY);
CREATE TABLE IF NOT EXISTS user_roles (
    "user" TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    role TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    PRIMARY KEY ("user", role));
CREATE TABLE IF NOT EXISTS grants (
    role TEXT NOT NULL REFERENCES roles(name) ON DELETE CASCADE,
    object_type TEXT NOT NULL, object_name TEXT NOT NULL, db_name TEXT NOT NULL,
    privilege TEXT NOT NULL, grantor TEXT NOT NULL,
    PRIMARY KEY (role, object_type, object_name, db_name, privilege));
CREATE TABLE IF NOT EXISTS privilege_groups (
    name TEXT NOT NULL, privilege TEXT NOT NULL, PRIMARY KEY (name, privilege));
CREATE TABLE IF NOT EXISTS privilege_group_names (name TEXT PRIMARY KEY);
"""


@dataclass(frozen=True)
class Grant:
    role: str
    object_type: str
    object_name: str
    db_name: str
    privilege: str
    grantor: str


def hash_password(password: str, salt: bytes) -> bytes:
    return hashlib.scrypt(password.encode(), salt=salt, n=_SCRYPT_N, r=_SCRYPT_R, p=_SCRYPT_P)


class Cursor(Protocol):
    """The DB-API calls the store makes, with ``?`` placeholders."""

    @property
    def rowcount(self) -> int: ...
    def execute(self, sql: str, params: Sequence[Any] = ...) -> Any: ...
    def fetchall(self) -> list[Any]: ...


class CredentialStore(ABC):
    """Persistent access-control records. Methods return plain values; rules live in
    ``engine/access.py``. A backend gives a connection (``_changing``, ``_query``) and a
    ``change_counter`` that moves when another process commits a change."""

    # A reader (follower, query worker) whose backend refuses writes: it seeds nothing.
    read_only = False

    def __init__(self) -> None:
        self._lock = threading.Lock()

    @abstractmethod
    def close(self) -> None: ...

    @abstractmethod
    def change_counter(self) -> int:
        """Differs after another process committed a change."""

    @abstractmethod
    def _changing(self) -> AbstractContextManager[Cursor]:
        """A context manager: a cursor inside one writing transaction."""

    @abstractmethod
    def _query(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]: ...

    def _write(self, sql: str, args: tuple[object, ...] = ()) -> int:
        with self._lock, self._changing() as cursor:
            return int(cursor.execute(sql, args).rowcount)

    def _write_many(self, statements: Iterable[tuple[str, Iterable[Sequence[object]]]]) -> int:
        """Several statements in one transaction; the last one's row count."""
        count = 0
        with self._lock, self._changing() as cursor:
            for sql, rows in statements:
                count = 0
                for args in rows:
                    count += int(cursor.execute(sql, args).rowcount)
        return count

    def _rows(self, sql: str, args: tuple[object, ...] = ()) -> list[tuple[object, ...]]:
        with self._lock:
            return self._query(sql, args)

    # -- users --------------------------------------------------------------------------------
    def add_user(self, name: str, password: str) -> bool:
        """False when the user already exists."""
        salt = os.urandom(_SALT_BYTES)
        digest = hash_password(password, salt)
        return (
            self._write(
                "INSERT INTO users VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (name, salt, digest, int(time.time() * 1000)),
            )
            == 1
        )

    def set_password(self, name: str, password: str) -> bool:
        salt = os.urandom(_SALT_BYTES)
        digest = hash_password(password, salt)
        return self._write("UPDATE users SET salt = ?, hash = ? WHERE name = ?", (salt, digest, name)) == 1

    def check_password(self, name: str, password: str) -> bool:
        rows = self._rows("SELECT salt, hash FROM users WHERE name = ?", (name,))
        if not rows:
            return False
        salt, stored = rows[0]
        assert isinstance(salt, bytes) and isinstance(stored, bytes)
        return hmac.compare_digest(hash_password(password, salt), stored)

    def password_record(self, name: str) -> str | None:
        """The stored salt and hash as one text (``scrypt:<salt hex>:<hash hex>``), for backups;
        never the password."""
        rows = self._rows("SELECT salt, hash FROM users WHERE name = ?", (name,))
        if not rows:
            return None
        salt, digest = rows[0]
        assert isinstance(salt, bytes) and isinstance(digest, bytes)
        return f"scrypt:{salt.hex()}:{digest.hex()}"

    def add_user_record(self, name: str, record: str) -> bool:
        """A user restored from a backup with its ``password_record``; False when it exists."""
        kind, salt, digest = record.split(":")
        if kind != "scrypt":
            raise ValueError(f"unknown password record kind {kind!r}")
        return (
            self._write(
                "INSERT INTO users VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
                (name, bytes.fromhex(salt), bytes.fromhex(digest), int(time.time() * 1000)),
            )
            == 1
        )

    def remove_user(self, name: str) -> bool:
        return self._write("DELETE FROM users WHERE name = ?", (name,)) == 1

    def users(self) -> list[str]:
        return [str(r[0]) for r in self._rows("SELECT name FROM users ORDER BY name")]

    def has_user(self, name: str) -> bool:
        return bool(self._rows("SELECT 1 FROM users WHERE name = ?", (name,)))

    # -- roles --------------------------------------------------------------------------------
    def add_role(self, name: str, description: str = "") -> bool:
        return self._write("INSERT INTO roles VALUES (?, ?) ON CONFLICT DO NOTHING", (name, description)) == 1

    def set_role_description(self, name: str, description: str) -> bool:
        return self._write("UPDATE roles SET description = ? WHERE name = ?", (description, name)) == 1

    def role_description(self, name: str) -> str:
        rows = self._rows("SELECT description FROM roles WHERE name = ?", (name,))
        return str(rows[0][0]) if rows else ""

    def remove_role(self, name: str) -> bool:
        return self._write("DELETE FROM roles WHERE name = ?", (name,)) == 1

    def roles(self) -> list[str]:
        return [str(r[0]) for r in self._rows("SELECT name FROM roles ORDER BY name")]

    def has_role(self, name: str) -> bool:
        return bool(self._rows("SELECT 1 FROM roles WHERE name = ?", (name,)))

    def add_user_role(self, user: str, role: str) -> None:
        self._write("INSERT INTO user_roles VALUES (?, ?) ON CONFLICT DO NOTHING", (user, role))

    def remove_user_role(self, user: str, role: str) -> None:
        self._write('DELETE FROM user_roles WHERE "user" = ? AND role = ?', (user, role))

    def roles_of(self, user: str) -> list[str]:
        return [
            str(r[0])
            for r in self._rows('SELECT role FROM user_roles WHERE "user" = ? ORDER BY role', (user,))
        ]

    def users_in(self, role: str) -> list[str]:
        return [
            str(r[0])
            for r in self._rows('SELECT "user" FROM user_roles WHERE role = ? ORDER BY "user"', (role,))
        ]

    # -- grants -------------------------------------------------------------------------------
    def add_grant(self, grant: Grant) -> None:
        self._write(
            "INSERT INTO grants VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT DO NOTHING",
            (grant.role, grant.object_type, grant.object_name, grant.db_name, grant.privilege, grant.grantor),
        )

    def remove_grant(self, grant: Grant) -> None:
        self._write(
            "DELETE FROM grants WHERE role = ? AND object_type = ? AND object_name = ? AND db_name = ?"
            " AND privilege = ?",
            (grant.role, grant.object_type, grant.object_name, grant.db_name, grant.privilege),
        )

    def grants_of(self, role: str) -> list[Grant]:
        rows = self._rows(
            "SELECT role, object_type, object_name, db_name, privilege, grantor FROM grants WHERE role = ?"
            " ORDER BY db_name, object_type, object_name, privilege",
            (role,),
        )
        return [Grant(*(str(v) for v in row)) for row in rows]

    # -- privilege groups (custom ones; built-in groups are code) ------------------------------
    def add_group(self, name: str) -> bool:
        return (
            self._write("INSERT INTO privilege_group_names VALUES (?) ON CONFLICT DO NOTHING", (name,)) == 1
        )

    def remove_group(self, name: str) -> bool:
        return (
            self._write_many(
                [
                    ("DELETE FROM privilege_groups WHERE name = ?", [(name,)]),
                    ("DELETE FROM privilege_group_names WHERE name = ?", [(name,)]),
                ]
            )
            == 1
        )

    def groups(self) -> dict[str, list[str]]:
        groups: dict[str, list[str]] = {
            str(r[0]): [] for r in self._rows("SELECT name FROM privilege_group_names ORDER BY name")
        }
        for name, privilege in self._rows("SELECT name, privilege FROM privilege_groups ORDER BY privilege"):
            groups.setdefault(str(name), []).append(str(privilege))
        return groups

    def add_group_privileges(self, name: str, privileges: list[str]) -> None:
        self._write_many(
            [
                (
                    "INSERT INTO privilege_groups VALUES (?, ?) ON CONFLICT DO NOTHING",
                    [(name, p) for p in privileges],
                )
            ]
        )

    def remove_group_privileges(self, name: str, privileges: list[str]) -> None:
        self._write_many(
            [
                (
                    "DELETE FROM privilege_groups WHERE name = ? AND privilege = ?",
                    [(name, p) for p in privileges],
                )
            ]
        )


class SqliteCredentialStore(CredentialStore):
    """The embedded store: a SQLite file. Its change counter is SQLite's ``data_version``,
    which moves when another connection (another process) commits."""

    def __init__(self, path: Path | str, changes: ChangeCounter | None = None) -> None:
        """``changes``: the shared counter of ``serve --workers N`` (change_counter.py):
        bumped after each commit by the primary's store (``publish``), read instead of
        ``data_version`` by a worker's (``follow``)."""
        super().__init__()
        self._changes = changes
        # A worker's: the primary writes it (and made the built-in roles and root).
        self.read_only = changes is not None and not changes.writable
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA foreign_keys = ON")
        self._db.executescript(_SCHEMA)
        # Role descriptions came later (AlterRole): stores made before get the column.
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(roles)")}
        if "description" not in columns:
            self._db.execute("ALTER TABLE roles ADD COLUMN description TEXT NOT NULL DEFAULT ''")

    def close(self) -> None:
        with self._lock:
            self._db.close()
            if self._changes is not None:
                self._changes.close()

    def change_counter(self) -> int:
        if self._changes is not None and not self._changes.writable:
            return self._changes.value()  # no syscall: the primary bumps it after each commit
        with self._lock:
            row = self._db.execute("PRAGMA data_version").fetchone()
        return int(row[0])

    @contextmanager
    def _changing(self) -> Iterator[Cursor]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db.cursor()
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")
        if self._changes is not None and self._changes.writable:
            self._changes.bump()

    def _query(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        return self._db.execute(sql, args).fetchall()


def open_credentials(
    catalog_url: str | None,
    data_dir: Path,
    *,
    read_only: bool = False,
    fence: Lease | None = None,
    on_commit_unknown: CommitListener | None = None,
    shared_changes: bool = False,
) -> CredentialStore:
    """The credential store beside the catalog ``catalog_url`` names: None is the SQLite file in
    ``data_dir``; a PostgreSQL url the same database as the catalog (needs psycopg), opened
    ``read_only`` by the processes that never write it (followers, query workers), its changes
    checked against the writer's lease ``fence``, a change whose commit went unanswered told to
    ``on_commit_unknown``. ``shared_changes``: the embedded file's changes go through the
    ``serve --workers N`` change counter (change_counter.py; ignored with PostgreSQL)."""
    if catalog_url is None:
        if not shared_changes:
            return SqliteCredentialStore(data_dir / CREDENTIALS_FILE)
        counter = (ChangeCounter.follow if read_only else ChangeCounter.publish)(data_dir, Slot.CREDENTIALS)
        return SqliteCredentialStore(data_dir / CREDENTIALS_FILE, counter)
    if not catalog_url.startswith(POSTGRES_SCHEMES):
        raise ValueError(f"unknown catalog URL {catalog_url!r}: expected postgresql://...")
    # Imported here: psycopg is an optional dependency, needed only by this backend.
    from sheafdb.storage.pg_credentials import PostgresCredentialStore

    return PostgresCredentialStore(
        catalog_url, read_only=read_only, fence=fence, on_commit_unknown=on_commit_unknown
    )
