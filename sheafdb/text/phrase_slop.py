"""The smallest slop at which PHRASE_MATCH would keep a text (Milvus's ComputePhraseMatchSlop).

Both texts go through the same analyzer. Each query term, at query position ``q``, is placed
at ``p + (last query position - q)`` for every position ``p`` it has in the text: the phrase
appears with slop ``s`` where one placement of every term fits in a window of ``s + 1``
positions. The smallest such window over the placements is the classic "smallest range
covering one element of each sorted list" (a heap of one cursor per list). A query term the
text lacks means no slop matches (None); a query without terms matches at slop 0.
"""

from __future__ import annotations

import heapq

from sheafdb.text.analyzer import Analyzer


def minimum_slop(analyzer: Analyzer, query: str, text: str) -> int | None:
    wanted = [(token.text, token.position) for token in analyzer.analyze(query)]
    if not wanted:
        return 0
    found: dict[str, list[int]] = {}
    for token in analyzer.analyze(text):
        found.setdefault(token.text, []).append(token.position)
    last = max(position for _, position in wanted)
    lists: list[list[int]] = []
    for term, position in wanted:
        positions = found.get(term)
        if not positions:
            return None
        lists.append(sorted(p + last - position for p in positions))
    return _smallest_range(lists)


def _smallest_range(lists: list[list[int]]) -> int:
    cursors = [(values[0], i, 0) for i, values in enumerate(lists)]
    heapq.heapify(cursors)
    high = max(values[0] for values in lists)
    best = high - cursors[0][0]
    while best > 0:
        low, which, at = heapq.heappop(cursors)
        best = min(best, high - low)
        if at + 1 == len(lists[which]):
            break  # this list is spent: no window without its current value can be smaller
        following = lists[which][at + 1]
        high = max(high, following)
        heapq.heappush(cursors, (following, which, at + 1))
    return best
