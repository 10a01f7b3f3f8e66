"""A property-based fuzzer of ``MilvusService``: hypothesis builds request messages, valid-looking
and broken, and sends them to a real server over raw gRPC stubs.

A finding is a reply with code 65535 (but for the few texts Milvus itself answers with 65535,
``MILVUS_PLAIN_ERRORS``), a Python exception name (or a traceback) in the reason,
a gRPC error instead of a Status reply, a call that does not answer within ``CALL_TIMEOUT_S``
(a hang), or stored data that changed after a write was refused.

Two kinds of requests are drawn:
- templates of the calls that carry data (Insert, Upsert, Delete, Search, Query) on a small
  target collection, each part valid or broken: wrong dims, odd byte lengths, NaN and ±inf,
  wrong types, missing fields, huge and empty strings, deep and random filter expressions,
  broken search params;
- any other method of the service, its message filled field by field from its descriptor.
  Methods that would destroy the target (drop, release, rename ...) never name it, and those
  that could lock the fuzzer out (root's password, roles, privileges) are not sent.

Used by ``tests/e2e/test_grpc_fuzz.py`` (a short run) and ``bench/fuzz_grpc.py`` (a long one).
"""

from __future__ import annotations

import base64
import collections
import json
import re
import struct
from dataclasses import dataclass, field
from typing import Any

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import strategies as st
from pymilvus import DataType, MilvusClient
from pymilvus.grpc_gen import common_pb2, milvus_pb2, milvus_pb2_grpc, schema_pb2

SERVICE = milvus_pb2.DESCRIPTOR.services_by_name["MilvusService"]
TARGET = "fuzz_target"
DIM = 4
SNAPSHOT_IDS = 50  # rows 0..49 are read back after every refused write
CALL_TIMEOUT_S = 60.0
UNEXPECTED = 65535
_EXCEPTION_NAME = re.compile(r"\b[A-Z][A-Za-z]*(Error|Exception)\b|Traceback")
# Milvus's analyzer errors name the kind of its tantivy binding's error (TantivyBindingError::
# InternalError, JsonError): its own text, which SheafDB mirrors (sheafdb/text/analyzer.py).
_MILVUS_ANALYZER_ERROR = re.compile(r"^create tokenizer failed with error: (InternalError|JsonError): ")
# Milvus answers these with 65535 itself (plain errors, not merr codes) and SheafDB mirrors them
# (sheafdb.errors.UnexpectedError raised on purpose): a 65535 with any other reason is a finding.
MILVUS_PLAIN_ERRORS = re.compile(
    "|".join(
        (
            r"^user already exists: ",
            r'^role \[name:".*"\] already exists$',
            r"^fail to drop the role that it has privileges",
            r"^there is no vector index on (field|collection): .*, please create index firstly$",
            r"^failed to create query plan: field .* is not loaded$",
            r"^field .* is not loaded$",
            r"^field .* is dynamic but dynamic field is not loaded$",
            r"^field .* cannot be returned since dynamic field not loaded$",
            r"^field .* not exist$",
            r'^ann field ".*" not loaded$',
            r"^index cannot be dropped, collection is loaded, please release it first$",
            r"^partition cannot be dropped, partition is loaded, please release it first$",
            r"^failed to load partition, due to no partition specified$",
            r"^partition name .* not found$",  # the proxy's getPartitionIDs (fmt.Errorf) on reads
            r"^disable load partitions if partition key mode is used$",
            r"^database:.* not empty, must drop all collections before drop database$",
            r"^ef\(-?\d+\) should be larger than k\(\d+\)$",
        )
    ),
    re.DOTALL,
)

# Never sent: they could lock the fuzzer out or change who may do what.
LOCKOUT = frozenset(
    {
        "UpdateCredential", "DeleteCredential", "OperateUserRole", "DropRole", "OperatePrivilege",
        "OperatePrivilegeV2", "RestoreRBAC", "OperatePrivilegeGroup", "DropPrivilegeGroup",
    }
)  # fmt: skip
# Sent, but never naming the target collection: they would drop, empty or unload it.
DESTRUCTIVE = frozenset(
    {
        "DropCollection", "ReleaseCollection", "ReleasePartitions", "TruncateCollection", "RenameCollection",
        "AlterCollection", "AlterCollectionField", "AddCollectionField", "AlterCollectionSchema", "DropIndex",
        "AlterIndex", "DropPartition", "DropAlias", "AlterAlias", "CreateIndex", "LoadCollection",
        "LoadPartitions", "Delete", "AddCollectionFunction", "AlterCollectionFunction",
        "DropCollectionFunction", "AddCollectionStructField", "DropDatabase", "AlterDatabase",
    }
)  # fmt: skip
TEMPLATED = ("Insert", "Upsert", "Delete", "Search", "Query")
# Streaming methods (replication) are left out: the fuzzer sends unary calls.
GENERIC = tuple(
    m.name
    for m in SERVICE.methods
    if m.name not in LOCKOUT and not (m.client_streaming or m.server_streaming)
)


def auth_metadata(token: str) -> list[tuple[str, str]]:
    return [("authorization", base64.b64encode(token.encode()).decode())]


def create_target(uri: str, token: str) -> None:
    """The target collection: 4-d float vectors, a JSON field, a short VARCHAR; loaded."""
    client = MilvusClient(uri=uri, token=token)
    if client.has_collection(TARGET):
        client.drop_collection(TARGET)
    schema = client.create_schema(enable_dynamic_field=True)
    schema.add_field("id", DataType.INT64, is_primary=True)
    schema.add_field("vector", DataType.FLOAT_VECTOR, dim=DIM)
    schema.add_field("meta", DataType.JSON)
    schema.add_field("tag", DataType.VARCHAR, max_length=16)
    index = client.prepare_index_params()
    index.add_index("vector", index_type="HNSW", metric_type="L2", params={"M": 8, "efConstruction": 32})
    client.create_collection(TARGET, schema=schema, index_params=index)
    rows = [{"id": i, "vector": [i, 1.0, 0.5, 0.25], "meta": {"k": i}, "tag": f"t{i}"} for i in range(100)]
    client.insert(TARGET, rows)
    client.flush(TARGET)


# -- strategies ---------------------------------------------------------------------------------

FIELD_NAMES = st.sampled_from(["id", "vector", "meta", "tag", "$meta", "nope", "", "meta['k']"])
HOSTILE_TEXT = st.one_of(
    st.text(max_size=40),
    st.sampled_from(["", " ", "default", TARGET, "a" * 300, "x" * 100_000, "\x00", "é" * 70, "fz_other"]),
)
ODD_FLOATS = st.floats(width=32, allow_nan=True, allow_infinity=True)


@st.composite
def expressions(draw: st.DrawFn) -> str:
    """Filter texts: well-formed over the target's fields, deep, long, or junk."""
    kind = draw(st.sampled_from(["tree", "tree", "deep", "long", "junk", "empty"]))
    if kind == "empty":
        return ""
    if kind == "junk":
        return draw(st.text(max_size=60))
    if kind == "deep":
        unit = draw(st.sampled_from(["not ", "-", "(", "id + ", "meta['k']", "[", "!"]))
        n = draw(st.sampled_from([10, 199, 201, 1000, 5000]))
        tail = ")" * n if unit == "(" else ("]" * n if unit == "[" else "")
        return unit * n + "id > 0" + tail
    if kind == "long":
        op = draw(st.sampled_from([" or ", " and ", " || ", ","]))
        n = draw(st.sampled_from([100, 3000, 8000]))
        return op.join(f"id == {i}" for i in range(n))
    leaf = st.one_of(
        st.sampled_from(["id", "tag", "meta", 'meta["k"]', "meta['k'][0]", "vector", "nope", "$meta", "{p}"]),
        st.integers(-(2**70), 2**70).map(str),
        ODD_FLOATS.map(repr),
        st.text(max_size=8).map(json.dumps),
        st.sampled_from(["true", "NaN", "inf", "[1, 2, 3]", "[]", "null"]),
    )
    node = st.recursive(
        leaf,
        lambda inner: st.one_of(
            st.tuples(
                inner, st.sampled_from(["==", "<", ">=", "!=", "+", "*", "/", "%", "**", "like", "in"]), inner
            ).map(" ".join),
            st.tuples(inner, st.sampled_from([" and ", " or "]), inner).map("".join),
            inner.map(lambda e: f"not ({e})"),
            inner.map(lambda e: f"-{e}"),
            st.tuples(
                st.sampled_from(["json_contains", "array_contains", "exists", "is_null", "nope"]), inner
            ).map(lambda t: f"{t[0]}({t[1]})"),
        ),
        max_leaves=12,
    )
    return draw(node)


@st.composite
def search_params_json(draw: st.DrawFn) -> str:
    choice = draw(st.sampled_from(["valid", "odd", "deep", "junk", "none"]))
    if choice == "none":
        return ""
    if choice == "junk":
        return draw(st.text(max_size=30))
    if choice == "deep":
        n = draw(st.sampled_from([50, 150, 5000]))
        return '{"a":' * n + "1" + "}" * n
    key = draw(st.sampled_from(["ef", "nprobe", "radius", "range_filter", "drop_ratio_search", "level"]))
    value = draw(
        st.one_of(st.integers(-(2**40), 2**40), ODD_FLOATS.filter(lambda f: f == f), st.text(max_size=5))
    )
    if choice == "odd":
        return f'{{"{key}": {draw(st.sampled_from(["NaN", "Infinity", "-5", "1e400", "[]", "{}"]))}}}'
    return json.dumps({key: value})


def _vector_bytes(draw: st.DrawFn) -> bytes:
    shape = draw(st.sampled_from(["ok", "ok", "nan", "odd", "empty", "wide"]))
    if shape == "odd":
        return draw(st.binary(min_size=1, max_size=33))
    if shape == "empty":
        return b""
    values = draw(st.lists(ODD_FLOATS, min_size=DIM, max_size=DIM))
    if shape == "ok":
        values = [v if v == v and abs(v) != float("inf") else 0.5 for v in values]
    elif shape == "wide":
        values = values * 3
    return struct.pack(f"<{len(values)}f", *values)


@st.composite
def search_requests(draw: st.DrawFn) -> milvus_pb2.SearchRequest:
    rows = [_vector_bytes(draw) for _ in range(draw(st.integers(0, 3)))]
    kind = draw(st.sampled_from([101, 101, 100, 102, 103, 104, 105, 21, 5, 0, 999]))
    group = common_pb2.PlaceholderGroup(
        placeholders=[common_pb2.PlaceholderValue(tag="$0", type=kind, values=rows)]
    )
    blob = group.SerializeToString() if draw(st.booleans()) else draw(st.binary(max_size=40))
    params = {
        "topk": draw(st.sampled_from(["3", "0", "-1", "16385", "abc", "", "10"])),
        "params": draw(search_params_json()),
        "metric_type": draw(st.sampled_from(["", "L2", "IP", "COSINE", "HAMMING", "nope"])),
        "anns_field": draw(st.sampled_from(["", "vector", "meta", "nope"])),
        "offset": draw(st.sampled_from(["0", "5", "-3", "x"])),
        "round_decimal": draw(st.sampled_from(["-1", "3", "99"])),
        "group_by_field": draw(st.sampled_from(["", "", "tag", "meta", "nope"])),
    }
    kept = {k: v for k, v in params.items() if draw(st.booleans()) or k == "topk"}
    return milvus_pb2.SearchRequest(
        collection_name=draw(st.sampled_from([TARGET, TARGET, TARGET, "nope", ""])),
        dsl=draw(expressions()),
        placeholder_group=blob,
        nq=draw(st.sampled_from([len(rows), len(rows), 0, 7])),
        search_params=[common_pb2.KeyValuePair(key=k, value=v) for k, v in kept.items()],
        output_fields=draw(st.lists(FIELD_NAMES, max_size=3)),
        partition_names=draw(st.lists(st.sampled_from(["_default", "nope"]), max_size=1)),
    )


@st.composite
def query_requests(draw: st.DrawFn) -> milvus_pb2.QueryRequest:
    params = {
        "limit": draw(st.sampled_from(["10", "0", "-1", "16384", "99999", "x"])),
        "offset": draw(st.sampled_from(["0", "3", "-1", "16384"])),
    }
    kept = {k: v for k, v in params.items() if draw(st.booleans())}
    template = {"p": schema_pb2.TemplateValue(int64_val=draw(st.integers(-(2**63), 2**63 - 1)))}
    return milvus_pb2.QueryRequest(
        collection_name=draw(st.sampled_from([TARGET, TARGET, "nope"])),
        expr=draw(expressions()),
        output_fields=draw(
            st.lists(st.sampled_from(["id", "vector", "meta", "tag", "*", "count(*)", "nope"]), max_size=3)
        ),
        query_params=[common_pb2.KeyValuePair(key=k, value=v) for k, v in kept.items()],
        expr_template_values=template if draw(st.booleans()) else {},
    )


@st.composite
def field_columns(draw: st.DrawFn, n: int) -> list[schema_pb2.FieldData]:
    ids = draw(st.lists(st.integers(-(2**63), 2**63 - 1) | st.integers(1000, 1100), min_size=n, max_size=n))
    dim = draw(st.sampled_from([DIM, DIM, DIM, 0, 3, 5, -1]))
    vector_kind = draw(st.sampled_from(["float", "float", "binary", "fp16"]))
    vectors = schema_pb2.VectorField(dim=dim)
    width = draw(st.sampled_from([n * DIM, n * DIM, n * DIM + 1, max(n * DIM - 1, 0)]))
    if vector_kind == "float":
        vectors.float_vector.data.extend(draw(st.lists(ODD_FLOATS, min_size=width, max_size=width)))
    elif vector_kind == "binary":
        vectors.binary_vector = draw(st.binary(max_size=3 * n + 1))
    else:
        vectors.float16_vector = draw(st.binary(max_size=9 * n + 1))
    meta = draw(
        st.lists(
            st.one_of(
                st.builds(lambda k: json.dumps({"k": k}).encode(), st.integers()),
                st.sampled_from(
                    [b'{"a": NaN}', b"[1,", b"", b"\xff\xfe", b"null", b"[" * 3000 + b"]" * 3000]
                ),
                st.binary(max_size=12),
            ),
            min_size=n,
            max_size=n,
        )
    )
    tags = draw(st.lists(st.text(max_size=20), min_size=n, max_size=n))
    columns = [
        schema_pb2.FieldData(
            field_name="id",
            type=draw(st.sampled_from([DataType.INT64, DataType.INT64, DataType.VARCHAR, DataType.FLOAT])),
            scalars=schema_pb2.ScalarField(long_data=schema_pb2.LongArray(data=ids)),
        ),
        schema_pb2.FieldData(field_name="vector", type=DataType.FLOAT_VECTOR, vectors=vectors),
        schema_pb2.FieldData(
            field_name="meta",
            type=DataType.JSON,
            scalars=schema_pb2.ScalarField(json_data=schema_pb2.JSONArray(data=meta)),
        ),
        schema_pb2.FieldData(
            field_name=draw(st.sampled_from(["tag", "tag", "nope", ""])),
            type=DataType.VARCHAR,
            scalars=schema_pb2.ScalarField(string_data=schema_pb2.StringArray(data=tags)),
        ),
    ]
    dropped = draw(st.sampled_from([None, None, 0, 1, 2, 3]))
    return [c for i, c in enumerate(columns) if i != dropped]


@st.composite
def write_requests(draw: st.DrawFn, method: str) -> Message:
    n = draw(st.integers(0, 4))
    fields = draw(field_columns(n))
    num_rows = draw(st.sampled_from([n, n, n + 1, 0]))
    if method == "Insert":
        return milvus_pb2.InsertRequest(collection_name=TARGET, fields_data=fields, num_rows=num_rows)
    return milvus_pb2.UpsertRequest(collection_name=TARGET, fields_data=fields, num_rows=num_rows)


@st.composite
def delete_requests(draw: st.DrawFn) -> milvus_pb2.DeleteRequest:
    # Only rows >= 1000 (written by the fuzzer) may go; the expression may still be broken.
    return milvus_pb2.DeleteRequest(collection_name=TARGET, expr=f"id >= 1000 and ({draw(expressions())})")


def _scalar(draw: st.DrawFn, fd: FieldDescriptor, method: str) -> Any:
    t = fd.type
    if t == FieldDescriptor.TYPE_STRING:
        text = draw(HOSTILE_TEXT)
        return "fz_other" if text == TARGET and method in DESTRUCTIVE else text
    if t == FieldDescriptor.TYPE_BYTES:
        return draw(st.binary(max_size=40))
    if t == FieldDescriptor.TYPE_BOOL:
        return draw(st.booleans())
    if t in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
        return draw(ODD_FLOATS)
    if t == FieldDescriptor.TYPE_ENUM:
        return draw(st.sampled_from([v.number for v in fd.enum_type.values] + [9999]))
    unsigned = t in (FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64, FieldDescriptor.TYPE_FIXED64)
    bits = (
        32
        if t in (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_SINT32)
        else 64
    )
    low, high = (0, 2**bits - 1) if unsigned else (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)
    return draw(st.one_of(st.integers(low, high), st.sampled_from([low, high, 0, 1])))


def _fill(draw: st.DrawFn, message: Message, descriptor: Descriptor, method: str, depth: int) -> None:
    for fd in descriptor.fields:
        if fd.message_type is not None and fd.message_type.GetOptions().map_entry:
            continue  # maps: left empty
        if not draw(st.booleans()):
            continue  # a missing field
        is_repeated = fd.is_repeated
        if fd.type == FieldDescriptor.TYPE_MESSAGE:
            if depth >= 3:
                continue
            if is_repeated:
                for _ in range(draw(st.integers(0, 2))):
                    _fill(draw, getattr(message, fd.name).add(), fd.message_type, method, depth + 1)
            else:
                _fill(draw, getattr(message, fd.name), fd.message_type, method, depth + 1)
                getattr(message, fd.name).SetInParent()
        elif is_repeated:
            values = [_scalar(draw, fd, method) for _ in range(draw(st.integers(0, 3)))]
            getattr(message, fd.name).extend(values)
        else:
            setattr(message, fd.name, _scalar(draw, fd, method))


@st.composite
def generic_requests(draw: st.DrawFn) -> tuple[str, Message]:
    method = draw(st.sampled_from(GENERIC))
    descriptor = SERVICE.methods_by_name[method].input_type
    message = message_factory.GetMessageClass(descriptor)()
    _fill(draw, message, descriptor, method, 0)
    return method, message


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, Message]:
    """One (method, request) pair: a data-plane template half of the time, else any method."""
    if draw(st.booleans()):
        return draw(generic_requests())
    method = draw(st.sampled_from(TEMPLATED))
    if method in ("Insert", "Upsert"):
        return method, draw(write_requests(method))
    if method == "Delete":
        return method, draw(delete_requests())
    if method == "Search":
        return method, draw(search_requests())
    return method, draw(query_requests())


# -- the target ------------------------------------------------------------------------------


@dataclass
class FuzzTarget:
    """Sends requests to one server and judges the replies; counts what it saw."""

    address: str  # host:port
    token: str
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    codes: collections.Counter[int] = field(default_factory=collections.Counter)

    def __post_init__(self) -> None:
        self._channel = grpc.insecure_channel(
            self.address,
            options=[("grpc.max_send_message_length", -1), ("grpc.max_receive_message_length", -1)],
        )
        self._stub = milvus_pb2_grpc.MilvusServiceStub(self._channel)
        self._metadata = auth_metadata(self.token)
        self._snapshot = self._read_back()

    def close(self) -> None:
        self._channel.close()

    def send(self, method: str, request: Message) -> None:
        """Send one request; AssertionError describing the finding, if any."""
        self.calls[method] += 1
        reply = self._call(method, request)
        status = _status_of(reply)
        if status is None:
            return  # a reply without a Status (Dummy, GetReplicateInfo): it answered, nothing to judge
        self.codes[status.code] += 1
        where = f"{method} -> code {status.code}: {status.reason[:300]!r}"
        if status.code == UNEXPECTED:
            assert MILVUS_PLAIN_ERRORS.search(status.reason), f"internal error: {where}"
        reason = _MILVUS_ANALYZER_ERROR.sub("", status.reason)
        assert not _EXCEPTION_NAME.search(reason), f"exception name in the reason: {where}"
        if method in ("Insert", "Upsert", "Delete"):
            after = self._read_back()
            if status.code != 0:
                assert after == self._snapshot, f"a refused {method} changed stored data: {where}"
            self._snapshot = after

    def _call(self, method: str, request: Message) -> Message:
        rpc = getattr(self._stub, method)
        try:
            return rpc(request, metadata=self._metadata, timeout=CALL_TIMEOUT_S)  # type: ignore[no-any-return]
        except grpc.RpcError as err:
            code = err.code()  # type: ignore[attr-defined]
            if code is grpc.StatusCode.DEADLINE_EXCEEDED:
                raise AssertionError(
                    f"{method} did not answer within {CALL_TIMEOUT_S:g} s (a hang)"
                ) from None
            raise AssertionError(f"{method} failed at the gRPC level: {code} {err.details()}") from None  # type: ignore[attr-defined]

    def _read_back(self) -> tuple[int, str]:
        """(row count, the first rows' content) of the target, read at Strong consistency."""
        count = milvus_pb2.QueryRequest(
            collection_name=TARGET, expr="", output_fields=["count(*)"], consistency_level=common_pb2.Strong
        )
        rows = milvus_pb2.QueryRequest(
            collection_name=TARGET,
            expr=f"id >= 0 and id < {SNAPSHOT_IDS}",
            output_fields=["*"],
            consistency_level=common_pb2.Strong,
        )
        counted = self._stub.Query(count, metadata=self._metadata, timeout=CALL_TIMEOUT_S)
        read = self._stub.Query(rows, metadata=self._metadata, timeout=CALL_TIMEOUT_S)
        for reply in (counted, read):
            assert reply.status.code == 0, f"reading the target back failed: {reply.status.reason}"
        total = counted.fields_data[0].scalars.long_data.data[0]
        content = sorted(fd.SerializeToString(deterministic=True).hex() for fd in read.fields_data)
        return int(total), "".join(content)


def _status_of(reply: Message) -> common_pb2.Status | None:
    if isinstance(reply, common_pb2.Status):
        return reply
    for fd in reply.DESCRIPTOR.fields:
        if fd.message_type is common_pb2.Status.DESCRIPTOR:
            return getattr(reply, fd.name)  # type: ignore[no-any-return]
    return None
