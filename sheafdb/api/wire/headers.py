"""Request header blocks (HPACK, RFC 7541) decoded per connection, repeated blocks from memory.

A client sending the same call again encodes the same headers as references into its
dynamic table, so the block's bytes repeat exactly. Decoding them again gives the same
headers as long as the table has not changed since: ``HeaderDecoder`` keeps what it read
from recent blocks (a ``RequestHead``: the method, the deadline, the encoding, the call's
metadata) and forgets them all whenever the table changes (an insertion, an eviction or a
resize). A repeated call then costs one dict lookup instead of ``hpack``'s field-by-field
decode and the metadata's rebuilding (~40% of the transport's Python per call, cProfile).
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from hpack import Decoder
from hpack.table import HeaderTable

# Distinct blocks kept per connection (a client alternating a few calls needs a few).
_CACHED_BLOCKS = 64


# Request headers that are transport, not call metadata (grpcio leaves them out too).
_TRANSPORT = frozenset(("te", "content-type", "grpc-timeout", "grpc-encoding", "grpc-accept-encoding"))
Metadata = tuple[tuple[str, str | bytes], ...]


class RequestHead:
    """What a call's request headers say, read once per distinct block."""

    __slots__ = ("path", "timeout", "encoding", "metadata")

    def __init__(self, headers: Sequence[tuple[str, str]]) -> None:
        self.path = ""
        self.timeout: str | None = None
        self.encoding: str | None = None
        metadata: list[tuple[str, str | bytes]] = []
        for key, value in headers:
            if key == ":path":
                self.path = value
            elif key == "grpc-timeout":
                self.timeout = value
            elif key == "grpc-encoding":
                self.encoding = value
            if key[:1] == ":" or key in _TRANSPORT:
                continue
            if key.endswith("-bin"):  # as grpcio gives them: base64-decoded
                metadata.append((key, base64.b64decode(value + "=" * (-len(value) % 4))))
            else:
                metadata.append((key, value))
        self.metadata: Metadata = tuple(metadata)


class _CountingTable(HeaderTable):
    """hpack's header table, counting its changes (every insertion, eviction or resize)."""

    def __init__(self) -> None:
        super().__init__()
        self.changes = 0

    def add(self, name: bytes, value: bytes) -> None:
        self.changes += 1
        super().add(name, value)

    def _shrink(self) -> None:
        self.changes += 1
        super()._shrink()


class HeaderDecoder:
    def __init__(self, max_header_list_size: int) -> None:
        self._decoder = Decoder(max_header_list_size=max_header_list_size)
        self._table = _CountingTable()
        self._decoder.header_table = self._table
        self._cache: dict[bytes, RequestHead] = {}
        self._cached_at = 0  # the table's ``changes`` the cache holds for

    def decode(self, block: bytes) -> RequestHead:
        """What the block says (raises hpack's HPACKError when it does not decode, and
        binascii.Error for a ``-bin`` value that is not base64)."""
        if self._cached_at == self._table.changes:
            known = self._cache.get(block)
            if known is not None:
                return known
        else:
            self._cache.clear()
        head = RequestHead([(str(name), str(value)) for name, value in self._decoder.decode(block)])
        self._cached_at = self._table.changes
        if len(self._cache) >= _CACHED_BLOCKS:
            self._cache.clear()
        self._cache[block] = head
        return head
