"""The server's own gRPC-over-HTTP/2 transport (api/wire/) against a raw HTTP/2 client.

A real ``sheafdb serve`` (no auth) on a free port, one process and with two query workers;
requests are framed by hand (tests/e2e/raw_h2.py, headers by ``hpack``) to reach what the
SDKs rarely do: requests split into single bytes, header blocks in CONTINUATIONs, padding,
a client window of 1000 bytes, a reset of a call in flight, unknown methods, oversize
messages, pings, garbage, and stop's GOAWAY.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import grpc
import numpy as np
import pytest
from pymilvus import MilvusClient
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from tests.e2e.conftest import free_port, start_server, stop_server, wait_ready
from tests.e2e.raw_h2 import (
    ACK,
    CONTINUATION,
    DATA,
    END_HEADERS,
    END_STREAM,
    GOAWAY,
    HEADERS,
    PADDED,
    PING,
    RST_STREAM,
    SETTINGS,
    RawH2,
    frame,
    grpc_message,
)

DIM = 128
ROWS = 4000
SETTINGS_INITIAL_WINDOW_SIZE = 0x4
PROTOCOL_ERROR, FRAME_SIZE_ERROR = 0x1, 0x6


@pytest.fixture(scope="module", params=[1, 2], ids=["one process", "query workers"])
def port(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """A server; with ``--workers 2`` each connection is a query worker's (its own wire loop
    adopted the socket), which serves Query and forwards the rest to the primary."""
    root = tmp_path_factory.mktemp("wire")
    chosen = free_port()
    log_path = root / "server.log"
    process = start_server(
        root / "data", chosen, log_path, auth=False, extra=("--workers", str(request.param))
    )
    wait_ready(process, log_path)
    client = MilvusClient(uri=f"http://127.0.0.1:{chosen}")
    client.create_collection("wire", dimension=DIM, consistency_level="Strong")
    vectors = np.random.default_rng(7).random((ROWS, DIM), dtype=np.float32)
    client.insert("wire", [{"id": i, "vector": vectors[i].tolist()} for i in range(ROWS)])
    client.close()
    yield chosen
    stop_server(process)


def _version(raw: RawH2, stream: int) -> str:
    headers, body, _ = raw.response(stream)
    assert headers[":status"] == "200" and headers["grpc-status"] == "0", headers
    return milvus_pb2.GetVersionResponse.FromString(body[5:]).version


def test_a_request_split_into_single_bytes_is_answered(port: int) -> None:
    raw = RawH2(port)
    block = raw.request_headers("GetVersion")
    request = frame(HEADERS, END_HEADERS, 1, block) + frame(DATA, END_STREAM, 1, grpc_message(b""))
    for byte in range(len(request)):
        raw.send(request[byte : byte + 1])
    assert _version(raw, 1).startswith("v2.")
    raw.close()


def test_headers_in_continuation_frames_and_padded_data(port: int) -> None:
    raw = RawH2(port)
    block = raw.request_headers("GetVersion", (("x-filler", "y" * 3000),))
    thirds = [
        block[: len(block) // 3],
        block[len(block) // 3 : 2 * len(block) // 3],
        block[2 * len(block) // 3 :],
    ]
    padding = 40
    padded = bytes([padding]) + grpc_message(b"") + b"\x00" * padding
    raw.send(
        frame(HEADERS, 0, 1, thirds[0])
        + frame(CONTINUATION, 0, 1, thirds[1])
        + frame(CONTINUATION, END_HEADERS, 1, thirds[2])
        + frame(DATA, END_STREAM | PADDED, 1, padded)
    )
    assert _version(raw, 1).startswith("v2.")
    # The dynamic table stays in step: a second call on the connection reuses its entries.
    raw.unary(3, "GetVersion", b"")
    assert _version(raw, 3).startswith("v2.")
    raw.close()


def _query_all(ids: range) -> bytes:
    expression = f"id in [{', '.join(str(i) for i in ids)}]"
    return milvus_pb2.QueryRequest(
        collection_name="wire", expr=expression, output_fields=["vector"], consistency_level=common_pb2.Strong
    ).SerializeToString()


def test_a_large_request_and_a_multi_megabyte_answer_under_a_small_window(port: int) -> None:
    raw = RawH2(port, {SETTINGS_INITIAL_WINDOW_SIZE: 1000})
    request = grpc_message(_query_all(range(ROWS)))
    assert len(request) > 16384
    block = raw.request_headers("Query")
    chunks = [request[i : i + 16384] for i in range(0, len(request), 16384)]
    data = b"".join(
        frame(DATA, END_STREAM if i == len(chunks) - 1 else 0, 1, c) for i, c in enumerate(chunks)
    )
    raw.send(frame(HEADERS, END_HEADERS, 1, block) + data)
    granted = 1000
    received = 0
    headers: dict[str, str] = {}
    body = b""
    while "grpc-status" not in headers:
        item = raw.read_frame()
        if item.kind == HEADERS:
            headers.update(raw.headers_of(item))
        elif item.kind == DATA and item.stream == 1:
            received += len(item.payload)
            assert received <= granted, "DATA beyond the window the client granted"
            body += item.payload
            size = struct.pack(">I", len(item.payload))
            raw.send(frame(0x8, 0, 1, size) + frame(0x8, 0, 0, size))
            granted += len(item.payload)
    assert headers["grpc-status"] == "0", headers
    answer = milvus_pb2.QueryResults.FromString(body[5:])
    assert answer.status.code == 0
    vectors = next(f for f in answer.fields_data if f.field_name == "vector")
    assert len(vectors.vectors.float_vector.data) == ROWS * DIM
    assert len(body) > 2_000_000  # multi-megabyte, in 1000-byte grants
    raw.close()


def test_a_reset_call_in_flight_sends_nothing_more_and_the_connection_goes_on(port: int) -> None:
    raw = RawH2(port, {SETTINGS_INITIAL_WINDOW_SIZE: 1000})
    raw.unary(1, "Query", _query_all(range(ROWS)))
    first = raw.until(DATA)  # the answer is underway, held back by the window
    assert first.stream == 1
    raw.send(frame(RST_STREAM, 0, 1, struct.pack(">I", 0x8)) + frame(PING, 0, 0, b"12345678"))
    raw.until(PING)  # everything the server sent after reading the reset comes after this
    raw.send(frame(0x8, 0, 0, struct.pack(">I", 1 << 20)))  # room on the connection again
    raw.unary(3, "GetVersion", b"")
    headers, body, others = raw.response(3, grant=True)
    assert headers["grpc-status"] == "0"
    assert not [f for f in others if f.stream == 1], "frames of the reset stream after the reset"
    raw.close()


def test_an_unknown_method_is_unimplemented(port: int) -> None:
    raw = RawH2(port)
    raw.unary(1, "NoSuchMethod", b"")
    headers, body, _ = raw.response(1)
    assert headers["grpc-status"] == "12" and body == b""
    raw.close()
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        with pytest.raises(grpc.RpcError) as caught:
            channel.unary_unary("/milvus.proto.milvus.MilvusService/Nope")(b"", timeout=30)
        assert caught.value.code() is grpc.StatusCode.UNIMPLEMENTED


def test_an_oversize_message_is_refused_before_it_is_read(port: int) -> None:
    raw = RawH2(port)
    block = raw.request_headers("Query")
    announced = 600 * 1024 * 1024  # past the 512 MiB limit, never sent
    raw.send(
        frame(HEADERS, END_HEADERS, 1, block) + frame(DATA, 0, 1, b"\x00" + struct.pack(">I", announced))
    )
    headers, _, _ = raw.response(1)
    assert headers["grpc-status"] == "8"
    assert "larger than max" in headers["grpc-message"]
    raw.unary(3, "GetVersion", b"")
    assert _version(raw, 3).startswith("v2.")
    raw.close()


def test_a_ping_is_acknowledged_with_its_payload(port: int) -> None:
    raw = RawH2(port)
    raw.send(frame(PING, 0, 0, b"abcdefgh"))
    ack = raw.until(PING)
    assert ack.flags & ACK and ack.payload == b"abcdefgh"
    raw.close()


@pytest.mark.parametrize(
    ("garbage", "code"),
    [
        (frame(SETTINGS, 0, 0, b"\x00\x04\x00"), FRAME_SIZE_ERROR),  # not a multiple of 6
        (frame(DATA, END_STREAM, 0, b"x"), PROTOCOL_ERROR),  # DATA on stream 0
        (frame(HEADERS, END_HEADERS, 2, b"\x82"), PROTOCOL_ERROR),  # an even stream id
        (frame(CONTINUATION, END_HEADERS, 1, b"\x82"), PROTOCOL_ERROR),  # no HEADERS before
    ],
)
def test_garbage_ends_its_connection_only(port: int, garbage: bytes, code: int) -> None:
    bystander = RawH2(port)
    bystander.unary(1, "GetVersion", b"")
    assert _version(bystander, 1)
    raw = RawH2(port)
    raw.send(garbage)
    away = raw.until(GOAWAY)
    assert struct.unpack(">II", away.payload[:8])[1] == code
    with pytest.raises(ConnectionError):
        while True:
            raw.read_frame()
    bystander.unary(3, "GetVersion", b"")
    assert _version(bystander, 3)
    bystander.close()
    raw.close()


def test_a_gzip_compressed_request_is_read(port: int) -> None:
    with grpc.insecure_channel(f"127.0.0.1:{port}", compression=grpc.Compression.Gzip) as channel:
        answer = channel.unary_unary("/milvus.proto.milvus.MilvusService/GetVersion")(
            milvus_pb2.GetVersionRequest().SerializeToString(), timeout=30
        )
        assert milvus_pb2.GetVersionResponse.FromString(answer).version.startswith("v2.")


def test_sixteen_clients_mixing_inserts_and_searches_read_their_writes(port: int) -> None:
    errors: list[BaseException] = []

    def work(index: int) -> None:
        try:
            client = MilvusClient(uri=f"http://127.0.0.1:{port}")
            rng = np.random.default_rng(index)
            for step in range(8):
                key = 100_000 + index * 100 + step
                client.insert("wire", [{"id": key, "vector": rng.random(DIM).tolist()}])
                found = client.query("wire", f"id == {key}", consistency_level="Strong")
                assert [row["id"] for row in found] == [key]
                hits = client.search("wire", [rng.random(DIM).tolist()], limit=5, consistency_level="Strong")
                assert len(hits[0]) == 5
            client.close()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors


def test_stop_sends_goaway_with_the_last_stream(tmp_path: Path) -> None:
    chosen = free_port()
    log_path = tmp_path / "server.log"
    process = start_server(tmp_path / "data", chosen, log_path, auth=False)
    wait_ready(process, log_path)
    raw = RawH2(chosen)
    raw.unary(1, "GetVersion", b"")
    assert _version(raw, 1)
    stop_server(process)
    away = raw.until(GOAWAY)
    assert struct.unpack(">II", away.payload[:8]) == (1, 0)
    raw.close()


def test_a_call_with_a_deadline_is_answered_and_forwarded_with_it(port: int) -> None:
    """``grpc-timeout`` gives the handler its time left; a query worker forwards ShowCollections
    to the primary with that deadline."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        answer = channel.unary_unary("/milvus.proto.milvus.MilvusService/ShowCollections")(
            milvus_pb2.ShowCollectionsRequest().SerializeToString(), timeout=30
        )
    assert "wire" in milvus_pb2.ShowCollectionsResponse.FromString(answer).collection_names
