"""Handlers for writes (insert, upsert, delete, flush) and reads (search, hybrid search, query)."""

from __future__ import annotations

from datetime import UTC, tzinfo

import grpc
from pymilvus.grpc_gen import milvus_pb2, schema_pb2

from sheafdb.api.grpc.context import RpcBase, database_of, write_tag_of
from sheafdb.api.grpc.field_codec import fields_to_table
from sheafdb.api.grpc.requests import (
    hybrid_search_request,
    key_values,
    query_request,
    search_request,
    template_values,
)
from sheafdb.api.grpc.results import mutation_result, query_results, search_results
from sheafdb.api.status import success
from sheafdb.engine.models import SearchResult
from sheafdb.schema import CollectionSchema, DataType
from sheafdb.storage.timestamps import physical_ms


class DataRpcs(RpcBase):
    def _schema(self, db: str, collection: str) -> CollectionSchema:
        return self.engine.collection_schema(db, collection)

    def _search_results(
        self, db: str, collection: str, result: SearchResult, group_by_field: str | None, zone_asked: str = ""
    ) -> milvus_pb2.SearchResults:
        """Search and hybrid search reply alike: typed by the schema, stamped with a fresh timestamp."""
        schema = self._schema(db, collection)
        zone = self._output_zone(db, collection, schema, zone_asked)
        return search_results(
            schema, result, collection, self.engine.allocate_timestamp(), group_by_field, zone
        )

    def _output_zone(self, db: str, collection: str, schema: CollectionSchema, asked: str) -> tzinfo:
        """TIMESTAMPTZ values go out in the request's zone, else the collection's (only looked
        up when the schema has such a field)."""
        if not any(f.dtype is DataType.TIMESTAMPTZ for f in schema.fields):
            return UTC
        return self.engine.output_zone(db, collection, asked)

    # -- writes -----------------------------------------------------------------------------
    def Insert(
        self, request: milvus_pb2.InsertRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.MutationResult:
        db = database_of(context, request.db_name)
        data = fields_to_table(
            request.fields_data, request.num_rows, self._schema(db, request.collection_name)
        )
        result = self.engine.insert(
            db, request.collection_name, data, request.partition_name, tag=write_tag_of(context)
        )
        return mutation_result(result, "insert")

    def Upsert(
        self, request: milvus_pb2.UpsertRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.MutationResult:
        db = database_of(context, request.db_name)
        data = fields_to_table(
            request.fields_data, request.num_rows, self._schema(db, request.collection_name)
        )
        result = self.engine.upsert(
            db,
            request.collection_name,
            data,
            request.partition_name,
            partial_update=request.partial_update,
            tag=write_tag_of(context),
        )
        return mutation_result(result, "upsert")

    def Delete(
        self, request: milvus_pb2.DeleteRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.MutationResult:
        result = self.engine.delete(
            database_of(context, request.db_name),
            request.collection_name,
            request.expr,
            template_values(request.expr_template_values),
            request.partition_name,
        )
        return mutation_result(result, "delete")

    def Flush(
        self, request: milvus_pb2.FlushRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.FlushResponse:
        db = database_of(context, request.db_name)
        flushed = self.engine.flush(db, tuple(request.collection_names))
        response = milvus_pb2.FlushResponse(status=success(), db_name=db)
        for name, ts in flushed.items():
            # Flush is synchronous here: no segment ids to wait on, GetFlushState says done.
            response.coll_segIDs[name].CopyFrom(schema_pb2.LongArray())
            response.flush_coll_segIDs[name].CopyFrom(schema_pb2.LongArray())
            response.coll_flush_ts[name] = ts
            response.coll_seal_times[name] = physical_ms(ts)
        return response

    def GetFlushState(
        self, request: milvus_pb2.GetFlushStateRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.GetFlushStateResponse:
        return milvus_pb2.GetFlushStateResponse(status=success(), flushed=True)

    # -- reads ------------------------------------------------------------------------------
    def Search(
        self, request: milvus_pb2.SearchRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.SearchResults:
        db = database_of(context, request.db_name)
        params = key_values(request.search_params)
        search = search_request(request, params)
        result = self.engine.search(db, search)
        zone_asked = params.get("timezone", "")
        return self._search_results(db, request.collection_name, result, search.group_by_field, zone_asked)

    def HybridSearch(
        self, request: milvus_pb2.HybridSearchRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.SearchResults:
        db = database_of(context, request.db_name)
        hybrid = hybrid_search_request(request)
        result = self.engine.hybrid_search(db, hybrid)
        return self._search_results(db, request.collection_name, result, hybrid.group_by_field)

    def Query(
        self, request: milvus_pb2.QueryRequest, context: grpc.ServicerContext
    ) -> milvus_pb2.QueryResults:
        db = database_of(context, request.db_name)
        result = self.engine.query(db, query_request(request))
        schema = self._schema(db, request.collection_name)
        zone_asked = key_values(request.query_params).get("timezone", "")
        zone = self._output_zone(db, request.collection_name, schema, zone_asked)
        return query_results(schema, result, request.collection_name, self.engine.allocate_timestamp(), zone)
