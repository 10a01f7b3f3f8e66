"""The proxy's side of Contract C: one read call to a query worker over gRPC.

The call is the generic unary method ``/sheafdb.cluster.Worker/Read``; request and answer are
pickles of engine/distribution/read_calls.py's dataclasses, sent with the cluster secret (the
worker accepts pickles only from holders of the catalog) and the client's own metadata (its
authorization: the worker checks it and its privileges; its refusal reaches the client as
``CredentialInvalid`` / ``PermissionDenied``). A transport failure (the worker gone, a
deadline) raises ``ReplicaNotAvailable`` so that the read is retried on another replica.

Channels are cached per address, at most ``max_channels`` of them: the least recently used is
closed when a new address needs room (workers come and go; their addresses do not repeat).
``_lock`` guards the cache; calls run outside it.
"""

from __future__ import annotations

import pickle
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import cast

import grpc

from sheafdb.engine.distribution.read_calls import READ_METHOD, SECRET_METADATA_KEY, ReadAnswer, ReadCall
from sheafdb.errors import CredentialInvalid, PermissionDenied, ReplicaNotAvailable, UnexpectedError

DEFAULT_MAX_CHANNELS = 64
# gRPC codes that mean "this worker did not answer": the read goes to another replica.
_TRANSPORT_CODES = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.CANCELLED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.UNIMPLEMENTED,  # something else listens on the address now
    }
)


class GrpcWorkerClient:
    """engine/distribution/cluster_reads.WorkerClient over gRPC."""

    def __init__(
        self,
        secret: Callable[[], str],
        *,
        max_channels: int = DEFAULT_MAX_CHANNELS,
        max_message_bytes: int = 512 * 1024 * 1024,
    ) -> None:
        self._secret = secret
        self._max_channels = max_channels
        self._options = [
            ("grpc.max_send_message_length", max_message_bytes),
            ("grpc.max_receive_message_length", max_message_bytes),
        ]
        self._lock = threading.Lock()
        self._channels: OrderedDict[str, tuple[grpc.Channel, Callable[..., bytes]]] = OrderedDict()

    def _method(self, address: str) -> Callable[..., bytes]:
        with self._lock:
            cached = self._channels.get(address)
            if cached is not None:
                self._channels.move_to_end(address)
                return cached[1]
            channel = grpc.insecure_channel(address, options=self._options)
            method = cast(Callable[..., bytes], channel.unary_unary(READ_METHOD))
            self._channels[address] = (channel, method)
            evicted = (
                self._channels.popitem(last=False)[1][0] if len(self._channels) > self._max_channels else None
            )
        if evicted is not None:
            evicted.close()
        return method

    def read(
        self, address: str, call: ReadCall, metadata: Sequence[tuple[str, str]], timeout_s: float | None
    ) -> ReadAnswer:
        method = self._method(address)
        sent = [(SECRET_METADATA_KEY, self._secret()), *metadata]
        try:
            raw = method(
                pickle.dumps(call, protocol=pickle.HIGHEST_PROTOCOL), metadata=sent, timeout=timeout_s
            )
        except grpc.RpcError as exc:
            rpc = cast(grpc.Call, exc)
            text = f"query worker {address} did not answer: {rpc.code().name} {rpc.details() or ''}".rstrip()
            if rpc.code() in _TRANSPORT_CODES:
                raise ReplicaNotAvailable(text) from None
            # The worker checked the client's own authorization: its verdict, as Milvus words it.
            if rpc.code() is grpc.StatusCode.UNAUTHENTICATED:
                raise CredentialInvalid(rpc.details() or None) from None
            if rpc.code() is grpc.StatusCode.PERMISSION_DENIED:
                raise PermissionDenied(rpc.details() or None) from None
            raise UnexpectedError(text) from None
        answer = pickle.loads(raw)  # noqa: S301 - from a worker of this cluster, over its channel
        if not isinstance(answer, ReadAnswer):
            raise UnexpectedError(f"query worker {address} answered {type(answer).__name__}")
        return answer

    def close(self) -> None:
        with self._lock:
            channels = [channel for channel, _ in self._channels.values()]
            self._channels.clear()
        for channel in channels:
            channel.close()
