"""Every MilvusService RPC has a handler; the not-supported ones answer a Status and are listed."""

from __future__ import annotations

from pathlib import Path

from pymilvus.grpc_gen import milvus_pb2

from sheafdb.api.grpc.guard import SERVICE, unsupported_rpcs_markdown
from sheafdb.api.grpc.servicer import MilvusServicer
from sheafdb.api.grpc.unsupported_reasons import NOT_YET, OUT_OF_SCOPE
from sheafdb.errors import Unsupported

DOC = Path(__file__).resolve().parents[3] / "docs" / "unsupported-rpcs.md"


def test_doc_lists_exactly_the_unsupported_rpcs() -> None:
    assert DOC.read_text() == unsupported_rpcs_markdown(MilvusServicer.unsupported_rpcs)


def test_every_unsupported_rpc_has_a_reason_and_no_reason_is_stale() -> None:
    reasons = {**OUT_OF_SCOPE, **NOT_YET}
    assert set(MilvusServicer.unsupported_rpcs) == set(reasons)
    assert not set(OUT_OF_SCOPE) & set(NOT_YET)


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
    response = servicer.DropRowPolicy(milvus_pb2.DropRowPolicyRequest(), None)
    assert response.code == Unsupported.code
    assert response.reason == "DropRowPolicy is not supported by SheafDB"
    prewarm = servicer.DescribePrewarmTask(milvus_pb2.DescribePrewarmTaskRequest(), None)
    assert prewarm.status.reason == "DescribePrewarmTask is not supported by SheafDB"


def test_a_crashing_handler_answers_65535_instead_of_raising() -> None:
    servicer = MilvusServicer(engine=None)  # type: ignore[arg-type]
    response = servicer.ShowCollections(milvus_pb2.ShowCollectionsRequest(), _NoMetadata())
    assert response.status.code == 65535


class _NoMetadata:
    def invocation_metadata(self) -> tuple[()]:
        return ()
