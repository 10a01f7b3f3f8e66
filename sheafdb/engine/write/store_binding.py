"""An object store prefix belongs to one catalog: refuse to start on another's.

At start the engine deletes every segment file its catalog does not name (orphans.py). On
remote storage a prefix could be shared by mistake, with a server whose catalog is empty or
another deployment's, and that removal would then delete someone else's data. So the first
server on a prefix writes its catalog's identity there (``catalog-identity``), and a server
whose catalog has another identity, or that finds data but no identity, does not start.
"""

from __future__ import annotations

from sheafdb.engine.write.orphans import COLLECTIONS_ROOT
from sheafdb.errors import UnexpectedError
from sheafdb.storage.catalog import Catalog
from sheafdb.storage.object_store import ObjectStore

IDENTITY_OBJECT = "catalog-identity"


def bind_store_to_catalog(store: ObjectStore, catalog: Catalog) -> None:
    """Claim an empty prefix for ``catalog``, accept its own, refuse any other."""
    identity = str(catalog.identity())
    if store.exists(IDENTITY_OBJECT):
        found = store.read_bytes(IDENTITY_OBJECT).decode().strip()
        if found != identity:
            raise UnexpectedError(
                f"the object store holds the data of another catalog (identity {found}, this "
                f"catalog's is {identity}): give each deployment its own prefix"
            )
        return
    if store.list(COLLECTIONS_ROOT):
        raise UnexpectedError(
            "the object store holds segments but no catalog identity: "
            "it is not this catalog's; give each deployment its own prefix"
        )
    store.write_bytes(IDENTITY_OBJECT, identity.encode())
