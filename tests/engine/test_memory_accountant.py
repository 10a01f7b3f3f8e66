from __future__ import annotations

import pytest

from sheafdb.engine.load.memory import MemoryAccountant, MemoryKey, give_back_memory
from sheafdb.errors import MemoryLimitExceeded


def key(
    partition: int = 1, segment: int = 10, kind: str = "field", name: str = "vec", collection: int = 7
) -> MemoryKey:
    return MemoryKey(collection, partition, segment, kind, name)


def test_default_budget_is_a_share_of_the_machine() -> None:
    import psutil

    acc = MemoryAccountant()
    assert acc.budget_bytes == int(psutil.virtual_memory().total * 0.7)


def test_register_and_report_by_collection_partition_field_and_index() -> None:
    acc = MemoryAccountant(10_000)
    acc.register(key(name="vec"), 100)
    acc.register(key(name="title"), 50)
    acc.register(key(partition=2, segment=11, name="vec"), 30)
    acc.register(key(kind="index", name="vec"), 200)
    acc.register(key(collection=8), 5)
    report = acc.report()
    assert report["used_bytes"] == 385
    c7 = report["collections"][7]
    assert c7["bytes"] == 380
    assert c7["partitions"] == {1: 350, 2: 30}
    assert c7["fields"] == {"vec": 130, "title": 50}
    assert c7["indexes"] == {"vec": 200}
    assert acc.collection_bytes(8) == 5


def test_reserve_refuses_with_code_3_naming_needed_and_available() -> None:
    acc = MemoryAccountant(1024 * 1024)
    acc.register(key(), 512 * 1024)
    with pytest.raises(MemoryLimitExceeded) as err:
        acc.reserve(600 * 1024)
    assert err.value.code == 3
    assert "needed(MB)=0.6" in err.value.message and "available(MB)=0.5" in err.value.message


def test_reservations_count_until_used_or_closed() -> None:
    acc = MemoryAccountant(1000)
    first = acc.reserve(600)
    with pytest.raises(MemoryLimitExceeded):
        acc.reserve(500)  # the first load's promise still counts
    acc.register(key(), 400, first)
    assert acc.available_bytes == 400
    first.close()  # the load used less than planned: the rest comes back
    assert acc.available_bytes == 600
    with acc.reserve(600):
        assert acc.available_bytes == 0
    assert acc.available_bytes == 600


def test_unregister_except_keeps_the_named_partitions() -> None:
    acc = MemoryAccountant(10_000)
    acc.register(key(partition=1), 10)
    acc.register(key(partition=2), 20)
    acc.register(key(collection=9), 40)
    assert acc.unregister_except(7, keep=frozenset({2})) == 10
    assert acc.unregister_except(7) == 20
    assert acc.used_bytes == 40
    assert acc.unregister(key(collection=9)) == 40
    assert acc.unregister(key(collection=9)) == 0


def test_give_back_memory_runs() -> None:
    give_back_memory()  # gc + pool release + malloc_trim must not raise on this platform
