"""Handlers for text analysis: RunAnalyzer (texts -> tokens, optionally with offsets and hashes)."""

from __future__ import annotations

import grpc
from pymilvus.grpc_gen import milvus_pb2

from sheafdb.api.grpc.context import RpcBase, database_of
from sheafdb.api.status import success


class TextRpcs(RpcBase):
    def RunAnalyzer(
        self, request: milvus_pb2.RunAnalyzerRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.RunAnalyzerResponse:
        # Bytes that are not UTF-8 read as U+FFFD, as Go's strings do (never a decode error).
        texts = [raw.decode(errors="replace") for raw in request.placeholder]
        analyzed = self.engine.run_analyzer(
            database_of(context, request.db_name),
            texts,
            request.analyzer_params,
            request.collection_name,
            request.field_name,
        )
        results = []
        for tokens in analyzed:
            result = milvus_pb2.AnalyzerResult()
            for found in tokens:
                token = result.tokens.add(token=found.token.text)
                if request.with_detail:
                    token.start_offset = found.token.start
                    token.end_offset = found.token.end
                    token.position = found.token.position
                    token.position_length = found.token.position_length
                if request.with_hash:
                    token.hash = found.hash
            results.append(result)
        return milvus_pb2.RunAnalyzerResponse(status=success(), results=results)
