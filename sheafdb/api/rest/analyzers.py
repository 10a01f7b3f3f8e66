"""``/v2/vectordb/common/run_analyzer``: texts -> tokens (Milvus's RunAnalyzer over REST).

Body: ``text`` (a string or an array), ``analyzerParams`` (an object or its JSON text), or
``collectionName`` + ``fieldName`` for a field's analyzer; ``withDetail``, ``withHash``.
Reply data: one ``{"tokens": [...]}`` per text, each token ``{"token"}`` plus
``startOffset``, ``endOffset``, ``position``, ``positionLength`` with detail and ``hash``.
"""

from __future__ import annotations

import json
from typing import Any

from sheafdb.api.rest.envelope import Call, Endpoint
from sheafdb.errors import invalid


def run_analyzer(call: Call) -> list[dict[str, Any]]:
    text = call.get("text")
    texts = [text] if isinstance(text, str) else text
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise invalid("text must be a string or an array of strings")
    params = call.get("analyzerParams") or ""
    detail, with_hash = bool(call.get("withDetail", False)), bool(call.get("withHash", False))
    analyzed = call.engine.run_analyzer(
        call.db,
        texts,
        params if isinstance(params, str) else json.dumps(params),
        str(call.get("collectionName") or ""),
        str(call.get("fieldName") or ""),
    )
    results = []
    for tokens in analyzed:
        listed = []
        for found in tokens:
            token: dict[str, Any] = {"token": found.token.text}
            if detail:
                token.update(
                    startOffset=found.token.start,
                    endOffset=found.token.end,
                    position=found.token.position,
                    positionLength=found.token.position_length,
                )
            if with_hash:
                token["hash"] = found.hash
            listed.append(token)
        results.append({"tokens": listed})
    return results


ENDPOINTS = (Endpoint("common/run_analyzer", run_analyzer, "RunAnalyzer", object_key=""),)
