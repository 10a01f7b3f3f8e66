from __future__ import annotations

import pytest

from sheafdb.engine.load.load_state import CollectionLoadState
from sheafdb.engine.models import LoadState
from sheafdb.errors import CollectionNotLoaded, PartitionNotLoaded, SheafError

FIELDS = ("id", "vec")


def loading(parts: frozenset[int] = frozenset({1, 2}), planned: dict[int, int] | None = None):
    state = CollectionLoadState(42)
    job = state.start(parts, FIELDS, False, "collection", planned or {1: 100, 2: 100})
    return state, job


def test_fresh_collection_is_not_loaded_and_refuses_reads_with_101() -> None:
    state = CollectionLoadState(42)
    assert state.state() is LoadState.NOT_LOAD
    assert state.progress() == 0
    with pytest.raises(CollectionNotLoaded) as err:
        state.require_searchable("search")
    assert err.value.code == 101
    assert err.value.message == "failed to search: collection not loaded[collection=42]"


def test_load_goes_through_loading_to_loaded_with_truthful_progress() -> None:
    state, job = loading()
    assert state.state() is LoadState.LOADING
    with pytest.raises(CollectionNotLoaded):
        state.require_searchable("query")
    state.add_loaded(job, 1, 100)
    state.add_loaded(job, 2, 50)
    assert state.progress() == 75
    assert state.progress([1]) == 99  # all bytes read, but not searchable until finish
    assert state.finish(job)
    assert state.state() is LoadState.LOADED
    assert state.progress() == 100
    assert state.require_searchable("search") == frozenset({1, 2})


def test_release_during_load_cancels_it() -> None:
    state, job = loading()
    cancelled = state.release()
    assert cancelled == [job] and job.cancelled
    assert not state.finish(job)  # the load thread learns it lost
    assert state.state() is LoadState.NOT_LOAD  # Releasing shows as NotLoad on the wire
    with pytest.raises(CollectionNotLoaded):
        state.require_searchable("search")
    assert state.active_partitions() == frozenset()  # out of the target at once
    state.released()
    assert state.fields == ()  # the field list may change on the next load


def test_release_of_one_partition_of_a_running_job_resets_its_other_partitions() -> None:
    state, job = loading()
    state.release([1])
    assert state.state([2]) is LoadState.NOT_LOAD


def test_partition_rules() -> None:
    state, job = loading(frozenset({1}), {1: 0})
    state.finish(job)
    assert state.state([1]) is LoadState.LOADED
    assert state.state([2]) is LoadState.NOT_LOAD
    assert state.state() is LoadState.LOADED  # loaded when any partition is
    with pytest.raises(PartitionNotLoaded) as err:
        state.require_searchable("search", [2])
    assert err.value.code == 201
    state.release([1])
    with pytest.raises(CollectionNotLoaded):
        state.require_searchable("search", [1])


def test_changing_the_field_list_while_loaded_is_refused_same_list_is_fine() -> None:
    state, job = loading()
    state.finish(job)
    state.check_fields(("vec", "id"), False)  # same set, other order: fine
    with pytest.raises(SheafError) as err:
        state.check_fields(("id", "vec", "title"), False)
    assert err.value.code == 1100
    assert "can't change the load field list for loaded collection" in err.value.message
    with pytest.raises(SheafError):
        state.check_fields(FIELDS, True)


def test_failure_keeps_the_reason_and_returns_to_not_load() -> None:
    state, job = loading()
    state.fail(job, "load segment failed: disk on fire")
    assert state.state() is LoadState.NOT_LOAD
    assert state.failure == "load segment failed: disk on fire"
    job2 = state.start(frozenset({1}), FIELDS, False, "collection", {1: 1})
    assert state.failure == ""
    assert state.finish(job2)


def test_missing_lists_only_partitions_not_loaded_or_loading() -> None:
    state, job = loading(frozenset({1}), {1: 5})
    assert state.missing([1, 2, 3]) == frozenset({2, 3})
