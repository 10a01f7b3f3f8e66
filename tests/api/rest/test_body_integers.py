"""An integer past Go's 64 bits does not bind (1801), as in Milvus's gin handlers."""

from __future__ import annotations


def test_huge_integers_are_refused_before_the_handler(rest):
    rest("collections/create", {"collectionName": "big", "dimension": 2})
    reply = rest("collections/load", {"collectionName": "big", "replicaNumber": 2**70})
    assert reply["code"] == 1801 and "replicaNumber" in reply["message"]
    assert rest("collections/load", {"collectionName": "big", "replicaNumber": 1})["code"] == 0
