"""Every error SheafDB raises, each carrying its Milvus code.

Layers below the API raise these; only the edge (``sheafdb.api``) turns them into a gRPC
``common.Status`` or a REST body. The codes and default texts follow Milvus's ``merr``
package, so SDKs react to them exactly as they react to Milvus (see
``shared/reference/milvus-behaviour.md`` §3).
"""

from __future__ import annotations

from typing import ClassVar

# Legacy ``common.ErrorCode`` values that pymilvus still inspects next to ``code``.
LEGACY_SUCCESS = 0
LEGACY_UNEXPECTED = 1
LEGACY_COLLECTION_NOT_EXISTS = 4
LEGACY_ILLEGAL_ARGUMENT = 5
LEGACY_META_FAILED = 15
LEGACY_INDEX_NOT_EXIST = 25
LEGACY_RATE_LIMIT = 49
LEGACY_INSUFFICIENT_MEMORY = 52
LEGACY_DISK_QUOTA = 54
LEGACY_NOT_READY = 56


class SheafError(Exception):
    """Base of every error that reaches a client.

    ``message`` is the full text the client sees (Milvus's ``reason``).
    """

    code: ClassVar[int] = 65535
    legacy_code: ClassVar[int] = LEGACY_UNEXPECTED
    default_text: ClassVar[str] = "unexpected error"
    retriable: ClassVar[bool] = False
    is_input_error: ClassVar[bool] = False

    def __init__(self, message: str | None = None) -> None:
        self.message = message if message is not None else self.default_text
        super().__init__(self.message)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code}, message={self.message!r})"


class UnexpectedError(SheafError):
    """Milvus's catch-all (65535): plain errors that are not in ``merr``."""


class ServiceNotReady(SheafError):
    code = 1
    legacy_code = LEGACY_NOT_READY
    default_text = "service not ready"
    retriable = True


class ServiceUnavailable(SheafError):
    code = 2
    default_text = "service unavailable"
    retriable = True


class WriterFenced(ServiceUnavailable):
    """This process lost the cluster's writer lease (another writer took over): its writes
    are refused, and a client retries against the writer that holds the lease now."""

    default_text = "this writer lost its lease and is fenced; retry on the current writer"

    @classmethod
    def lost(cls, name: str, token: int) -> WriterFenced:
        return cls(f"{cls.default_text} (lease {name}, token {token} is no longer current)")


class NotLogOwner(ServiceUnavailable):
    """This process does not own the collection's log (it holds no live lease ``log/<id>``:
    another shard writer owns it, or took it over). Retriable: the edge answers it at the
    transport level (gRPC UNAVAILABLE, HTTP 503), so a proxy's relay retries it on the owner
    it resolves afresh."""

    default_text = "not the owner of the collection's log; retry on its owner"

    @classmethod
    def of(cls, collection_id: int) -> NotLogOwner:
        return cls(f"{cls.default_text} (collection {collection_id})")


class MetaStoreUnavailable(ServiceUnavailable):
    """The catalog's PostgreSQL database cannot be reached (down, restarting, cut off). As
    Milvus with its meta store away: the call fails, retriable; the next one reconnects."""

    default_text = "the meta store (the catalog's PostgreSQL database) is unreachable; retry once it is back"


class CommitOutcomeUnknown(MetaStoreUnavailable):
    """A write of this process went unanswered at its commit, so it may have committed (or it
    turned out to have committed unacknowledged): the process's memory may no longer match the
    database. A cluster writer steps down on it (engine/write/writer_lease.py) and its
    successor recovers the database's truth."""

    default_text = (
        "the meta store's answer to a commit was lost: it may have happened; this writer steps down, retry"
    )


class MemoryLimitExceeded(SheafError):
    code = 3
    legacy_code = LEGACY_INSUFFICIENT_MEMORY
    default_text = "memory limit exceeded"


class DiskLimitExceeded(SheafError):
    code = 7
    legacy_code = LEGACY_DISK_QUOTA
    default_text = "disk limit exceeded"


class CollectionNotFound(SheafError):
    code = 100
    legacy_code = LEGACY_COLLECTION_NOT_EXISTS
    default_text = "collection not found"
    is_input_error = True

    @classmethod
    def named(cls, db: str, name: str) -> CollectionNotFound:
        return cls(f"collection not found[database={db}][collection={name}]")


class CollectionNotLoaded(SheafError):
    code = 101
    default_text = "collection not loaded"


class CollectionNotFullyLoaded(SheafError):
    code = 103
    default_text = "collection not fully loaded"
    retriable = True


class CollectionAlreadyLoaded(SheafError):
    code = 104
    default_text = "collection already loaded"


class PartitionNotFound(SheafError):
    code = 200
    legacy_code = LEGACY_META_FAILED
    default_text = "partition not found"
    is_input_error = True


class PartitionNotLoaded(SheafError):
    code = 201
    default_text = "partition not loaded"


class IndexNotFound(SheafError):
    code = 700
    legacy_code = LEGACY_INDEX_NOT_EXIST
    default_text = "index not found"


class IndexDuplicate(SheafError):
    code = 702
    default_text = "index duplicates"


class DatabaseNotFound(SheafError):
    code = 800
    default_text = "database not found"
    is_input_error = True


class DatabaseNumLimitExceeded(SheafError):
    code = 801
    default_text = "exceeded the limit number of database"


class InvalidDatabaseName(SheafError):
    code = 802
    default_text = "invalid database name"
    is_input_error = True


class ParameterInvalid(SheafError):
    code = 1100
    legacy_code = LEGACY_ILLEGAL_ARGUMENT
    default_text = "invalid parameter"
    is_input_error = True


class ParameterMissing(SheafError):
    code = 1101
    default_text = "missing parameter"
    is_input_error = True


class NotAuthenticated(SheafError):
    code = 1400
    default_text = "not authenticated"


class PermissionDenied(SheafError):
    code = 1401
    default_text = "privilege not permitted"


class AliasNotFound(SheafError):
    code = 1600
    default_text = "alias not found"
    is_input_error = True


class AliasCollectionNameConflict(SheafError):
    code = 1601
    default_text = "alias and collection name conflict"
    is_input_error = True


class AliasAlreadyExists(SheafError):
    code = 1602
    default_text = "alias already exist"
    is_input_error = True


class FieldNotFound(SheafError):
    code = 1700
    default_text = "field not found"
    is_input_error = True


class FieldNameInvalid(SheafError):
    code = 1701
    default_text = "field name invalid"
    is_input_error = True


class Unsupported(SheafError):
    """A Milvus feature SheafDB does not implement (yet). Never a hang, never a retry."""

    code = 1100
    legacy_code = LEGACY_ILLEGAL_ARGUMENT
    default_text = "not supported by SheafDB"
    is_input_error = True

    @classmethod
    def feature(cls, what: str) -> Unsupported:
        return cls(f"{what} is not supported by SheafDB")


class ImportFailed(SheafError):
    """Milvus's ErrImportFailed (2100), wrapped as ``<detail>: importing data failed``."""

    code = 2100
    legacy_code = LEGACY_ILLEGAL_ARGUMENT
    default_text = "importing data failed"
    is_input_error = True

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(f"{detail}: {self.default_text}" if detail else None)


def invalid(detail: str) -> ParameterInvalid:
    """Milvus's "Msg" wrap of ParameterInvalid: ``<detail>: invalid parameter``."""
    return ParameterInvalid(f"{detail}: invalid parameter")


# -- REST-only codes (Milvus's httpserver ``constant.go``) and access control ------------------


class RestNotAuthenticated(SheafError):
    """REST requests without valid credentials when authentication is on (HTTP 401)."""

    code = 1800
    default_text = "user hasn't authenticated"


class RestRequestNotJson(SheafError):
    code = 1801
    default_text = "can only accept json format request"
    is_input_error = True


class RestParameterMissing(SheafError):
    code = 1802
    default_text = "missing required parameters"
    is_input_error = True


class RestInsertDataInvalid(SheafError):
    code = 1804
    default_text = "fail to deal the insert data"
    is_input_error = True


class RestPrimaryKeyInvalid(SheafError):
    """REST get by ``id``: an id that is not of the primary key's type (a fraction, a bool)."""

    code = 1806
    default_text = "please check the primary key and its' type can only in [int, string]"
    is_input_error = True


class CredentialInvalid(SheafError):
    """Wrong user name or password; the gRPC edge answers UNAUTHENTICATED, REST 401."""

    code = 1400
    default_text = "auth check failure, please check username and password are correct"


class UnsafeBindRefused(SheafError):
    """Serving on a non-loopback address with authentication off, without ``insecure``."""

    code = 1100
    default_text = "refusing to listen on a public address without authentication"


# -- resource groups (Milvus merr 300-305) --------------------------------------------------------


class ResourceGroupNotFound(SheafError):
    code = 300
    default_text = "resource group not found"
    is_input_error = True

    @classmethod
    def named(cls, name: str) -> ResourceGroupNotFound:
        return cls(f"resource group not found[rg={name}]")


class ResourceGroupAlreadyExists(SheafError):
    code = 301
    default_text = "resource group already exist, but create with different config"
    is_input_error = True


class ResourceGroupIllegalConfig(SheafError):
    code = 303
    default_text = "resource group illegal config"
    is_input_error = True


class ResourceGroupNodeNotEnough(SheafError):
    code = 304
    default_text = "resource group node not enough"


class SegmentNotFound(SheafError):
    code = 600
    default_text = "segment not found"


class NodeNotFound(SheafError):
    code = 901
    default_text = "node not found"


class ReplicaNotAvailable(SheafError):
    """A query worker asked for a replica it does not hold (fully) or that it is leaving.

    The proxy retries the call on another replica (cluster mode, CLUSTER.md Contract C).
    """

    code = 401
    default_text = "replica not available"
    retriable = True


def error_for_code(code: int, message: str) -> SheafError:
    """The error a remote part answered with its code and message (cluster reads): the first
    error class of that code, carrying the message as the remote side wrote it."""
    pending: list[type[SheafError]] = [SheafError]
    while pending:
        cls = pending.pop(0)
        if cls.code == code and cls is not SheafError:
            return cls(message or None)
        pending.extend(cls.__subclasses__())
    return UnexpectedError(message or None)
