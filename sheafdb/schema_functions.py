"""A collection's functions (Milvus's ``FunctionSchema``): fields the server computes from others.

SheafDB runs the BM25 function (a VARCHAR field analyzed into a sparse vector of term
frequencies); the other types are accepted in the model so a schema round-trips, and refused
where a collection is created. Kept apart from ``schema.py``: the schema holds these as
``CollectionSchema.functions``.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class FunctionType(enum.IntEnum):
    """``schema.FunctionType`` numbers."""

    UNKNOWN = 0
    BM25 = 1
    TEXT_EMBEDDING = 2
    RERANK = 3
    MIN_HASH = 4
    MOL_FINGERPRINT = 5


# Wire names (REST v2 and the proto enum's names).
FUNCTION_TYPE_NAMES = {
    FunctionType.BM25: "BM25",
    FunctionType.TEXT_EMBEDDING: "TextEmbedding",
    FunctionType.RERANK: "Rerank",
    FunctionType.MIN_HASH: "MinHash",
    FunctionType.MOL_FINGERPRINT: "MolFingerprint",
    FunctionType.UNKNOWN: "Unknown",
}


@dataclass(frozen=True)
class FunctionSchema:
    name: str
    type: FunctionType
    input_field_names: tuple[str, ...]
    output_field_names: tuple[str, ...]
    description: str = ""
    params: Mapping[str, str] = field(default_factory=dict)
    function_id: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": int(self.type),
            "input_field_names": list(self.input_field_names),
            "output_field_names": list(self.output_field_names),
            "description": self.description,
            "params": dict(self.params),
            "function_id": self.function_id,
        }

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> FunctionSchema:
        return cls(
            name=d["name"],
            type=FunctionType(d["type"]),
            input_field_names=tuple(d.get("input_field_names", ())),
            output_field_names=tuple(d.get("output_field_names", ())),
            description=d.get("description", ""),
            params=dict(d.get("params", {})),
            function_id=d.get("function_id", 0),
        )


def function_output_names(functions: tuple[FunctionSchema, ...]) -> frozenset[str]:
    """Fields the server fills: clients never send them."""
    return frozenset(name for f in functions for name in f.output_field_names)


def bm25_output_names(functions: tuple[FunctionSchema, ...]) -> frozenset[str]:
    """BM25 output fields: indexed with metric BM25, their raw vectors never returned."""
    return frozenset(name for f in functions if f.type is FunctionType.BM25 for name in f.output_field_names)
