from __future__ import annotations

import gc
from collections.abc import Callable

from sheafdb.engine.engine import Engine


def test_compaction_merges_and_drops_deleted_rows(open_engine: Callable[..., Engine], kit) -> None:
    e = open_engine(compaction_min_segments=None)
    e.create_collection("default", "c", kit.basic_schema())
    for start in range(0, 40, 10):
        e.insert("default", "c", kit.make_rows(range(start, start + 10)))
        e.flush("default", ["c"])
    e.delete("default", "c", "id in [3, 15, 39]")
    coll = e._resolve("default", "c")
    old = coll.snapshot()
    old_dirs = [s.directory for s in old.sealed]
    events: list[str] = []
    coll.add_listener(lambda ev: events.append(ev.kind))
    assert e.compact("default", "c") == 4
    snap = coll.snapshot()
    assert len(snap.sealed) == 1 and snap.sealed[0].num_rows == 37
    assert "compacted" in events
    # The old snapshot still reads its files while it is alive ...
    assert all(e._store.exists(s.columns["id"].path) for s in old.sealed)
    expected = [i for i in range(40) if i not in (3, 15, 39)]
    assert kit.visible_ids(e, "c") == expected
    # ... and they go once nothing holds it.
    del old
    gc.collect()
    assert not any(e._store.exists(d) for d in old_dirs)
    e.close()
    assert kit.visible_ids(open_engine(), "c") == expected


def test_auto_seal_at_seal_bytes(open_engine: Callable[..., Engine], kit) -> None:
    e = open_engine(seal_bytes=2000)
    e.create_collection("default", "c", kit.basic_schema())
    for start in range(0, 100, 10):
        e.insert("default", "c", kit.make_rows(range(start, start + 10)))
    snap = e._resolve("default", "c").snapshot()
    assert snap.sealed, "growing data past seal_bytes must seal"
    sealed_rows = sum(s.num_rows for s in snap.sealed)
    growing_rows = sum(t.num_rows for t in snap.growing.values())
    assert sealed_rows + growing_rows == 100
    assert kit.visible_ids(e, "c") == list(range(100))
