"""Handlers for text analysis and a collection's functions: RunAnalyzer (texts -> tokens,
optionally with offsets and hashes), ComputePhraseMatchSlop, and Add / Alter / Drop
CollectionFunction (Milvus 2.6's rules, see ``engine/function_ddl.py``)."""

from __future__ import annotations

import grpc
from pymilvus.grpc_gen import common_pb2, milvus_pb2

from sheafdb.api.grpc.context import RpcBase, database_of
from sheafdb.api.grpc.function_codec import function_from_proto
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

    def ComputePhraseMatchSlop(
        self, request: milvus_pb2.ComputePhraseMatchSlopRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.ComputePhraseMatchSlopResponse:
        found = self.engine.compute_phrase_match_slop(
            request.analyzer_params, request.query_text, list(request.data_texts)
        )
        return milvus_pb2.ComputePhraseMatchSlopResponse(
            status=success(), is_match=[f.is_match for f in found], slops=[f.slop for f in found]
        )

    def AddCollectionFunction(
        self, request: milvus_pb2.AddCollectionFunctionRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        function = function_from_proto(request.functionSchema) if request.HasField("functionSchema") else None
        self.engine.add_collection_function(
            database_of(context, request.db_name), request.collection_name, function
        )
        return success()

    def AlterCollectionFunction(
        self, request: milvus_pb2.AlterCollectionFunctionRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        function = function_from_proto(request.functionSchema) if request.HasField("functionSchema") else None
        self.engine.alter_collection_function(
            database_of(context, request.db_name), request.collection_name, request.function_name, function
        )
        return success()

    def DropCollectionFunction(
        self, request: milvus_pb2.DropCollectionFunctionRequest, context: grpc.ServicerContext
    ) -> common_pb2.Status:
        self.engine.drop_collection_function(
            database_of(context, request.db_name), request.collection_name, request.function_name
        )
        return success()
