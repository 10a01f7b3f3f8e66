"""Every MilvusService RPC has a handler; the not-supported ones answer a Status and are listed."""

from __future__ import annotations

from pathlib import Path

from pymilvus.grpc_gen import milvus_pb2

from sheafdb.api.grpc.guard import SERVICE, unsupported_rpcs_markdown
from sheafdb.api.grpc.servicer import MilvusServicer
from sheafdb.errors import Unsupported

DOC = Path(__file__).resolve().parents[3] / "docs" / "unsupported-rpcs.md"


def test_doc_lists_exactly_the_unsupported_rpcs() -> None:
    assert DOC.read_text() == unsupported_rpcs_markdown(MilvusServicer.unsupported_rpcs)


def test_core_rpcs_are_implemented() -> None:
    for name in (
        "Connect",
        "Search",
        "Query",
        "Insert",
        "LoadCollection",
        "GetLoadingProgress",
        "HybridSearch",
    ):
        assert name not in MilvusServicer.unsupported_rpcs
    assert len(MilvusServicer.unsupported_rpcs) < len(SERVICE.methods)


def test_unsupported_rpc_answers_a_status_naming_itself() -> None:
    servicer = MilvusServicer(engine=None)  # type: ignore[arg-type]
    response = servicer.CreateResourceGroup(milvus_pb2.CreateResourceGroupRequest(), None)
    assert response.code == Unsupported.code
    assert response.reason == "CreateResourceGroup is not supported by SheafDB"
    listed = servicer.ListResourceGroups(milvus_pb2.ListResourceGroupsRequest(), None)
    assert listed.status.reason == "ListResourceGroups is not supported by SheafDB"


def test_a_crashing_handler_answers_65535_instead_of_raising() -> None:
    servicer = MilvusServicer(engine=None)  # type: ignore[arg-type]
    response = servicer.ShowCollections(milvus_pb2.ShowCollectionsRequest(), _NoMetadata())
    assert response.status.code == 65535


class _NoMetadata:
    def invocation_metadata(self) -> tuple[()]:
        return ()
