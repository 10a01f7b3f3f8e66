"""The query worker process's entry point: ``python -m sheafdb.api.query_worker_entry``.

A worker needs only pymilvus's generated gRPC stubs, but importing ``pymilvus.grpc_gen``
runs ``pymilvus/__init__``, which imports the whole client (pandas among it): ~45 MB more
in every worker process, measured. So the package is put in place as a bare namespace first
(its ``__path__`` only), then the stubs import from it as usual.
"""

from __future__ import annotations

import importlib.util
import sys
import types


def _stubs_without_client() -> None:
    spec = importlib.util.find_spec("pymilvus")
    if spec is None or spec.submodule_search_locations is None or "pymilvus" in sys.modules:
        return
    package = types.ModuleType("pymilvus")
    package.__path__ = list(spec.submodule_search_locations)
    sys.modules["pymilvus"] = package


if __name__ == "__main__":
    _stubs_without_client()
    from sheafdb.api.query_worker import main

    sys.exit(main())
