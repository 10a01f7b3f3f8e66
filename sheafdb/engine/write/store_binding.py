"""An object store prefix belongs to one catalog: refuse to start on another's.

At start the engine deletes every segment file its catalog does not name (orphans.py). On
remote storage a prefix could be shared by mistake, with a server whose catalog is empty or
another deployment's, and that removal would then delete someone else's data. So the first
server on a prefix writes its catalog's identity there (``catalog-identity``), and a server
whose catalog has another identity, or that finds data but no identity, does not start.

A PostgreSQL catalog with the segment files in the data dir (no ``--objects``) is shared by
every server on that catalog, but the files are not: a server started on another data dir
would find none of them (``require_segment_files``).
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


def require_segment_files(store: ObjectStore, catalog: Catalog) -> None:
    """Refuse a local store that does not hold the catalog's segments (one file looked at per
    collection: a data dir holds all of its collections' files or none)."""
    for record in catalog.list_collections():
        segments = catalog.list_segments(record.collection_id)
        columns = [c for segment in segments[:1] for c in segment.columns.values()]
        if columns and not store.exists(columns[0].path):
            raise UnexpectedError(
                f"the segment files of collection {record.name} are not in this data dir: with a "
                "shared catalog and no --objects, a server restarts on the data dir it wrote "
                "(--objects s3://... lets any machine take over)"
            )
