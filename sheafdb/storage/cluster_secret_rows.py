"""The cluster secret: a random value in the catalog's meta that proves a caller holds the catalog.

Query workers accept pickled read calls (engine/distribution/read_calls.py) only from callers
that send this value in the ``sheafdb-cluster-secret`` metadata: proxies and the writer read it
from the catalog, nobody else can know it. The writer makes it once (``ensure_cluster_secret``);
everyone else reads it. A mixin of ``SqlCatalog`` (SQLite and PostgreSQL share the SQL).
"""

from __future__ import annotations

import secrets
from contextlib import AbstractContextManager
from typing import Any, Protocol

_KEY = "cluster_secret"


class _Catalog(Protocol):
    def _tx(self) -> AbstractContextManager[Any]: ...
    def _read(self) -> AbstractContextManager[Any]: ...


class ClusterSecretRows:
    def cluster_secret(self: _Catalog) -> int | None:
        """The secret, None until a writer made one."""
        with self._read() as cur:
            row = cur.execute("SELECT value FROM meta WHERE key = ?", (_KEY,)).fetchone()
        return None if row is None else int(row[0])

    def ensure_cluster_secret(self: _Catalog) -> int:
        """The secret, made now if there is none (the first writer's; later ones keep it)."""
        with self._tx() as cur:
            cur.execute(
                "INSERT INTO meta VALUES (?, ?) ON CONFLICT (key) DO NOTHING", (_KEY, secrets.randbits(62))
            )
            (value,) = cur.execute("SELECT value FROM meta WHERE key = ?", (_KEY,)).fetchone()
        return int(value)
