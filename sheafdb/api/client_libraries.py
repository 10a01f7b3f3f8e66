"""Keeping pymilvus's client and pandas out of a server process.

A server needs only pymilvus's generated gRPC stubs (``pymilvus.grpc_gen``), but importing
them runs ``pymilvus/__init__``, which imports the whole client; and pyarrow imports pandas
(installed as pymilvus's dependency) the first time it checks whether a value is a pandas
object, which building any table does. Together ~45 MB in every server and query worker
process, measured, for code a server never runs (it uses neither the client nor pandas).

So a process that will serve, before anything imports them: takes the stubs from pymilvus as
a bare namespace package (its ``__path__`` only), and answers ``import pandas`` with
ModuleNotFoundError, which pyarrow reads as "pandas is not installed".
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import sys
import types
from collections.abc import Sequence

_UNUSED = "pandas"


class _Unused(importlib.abc.MetaPathFinder):
    """Finds ``pandas`` (and its submodules) missing."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None = None, target: types.ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname == _UNUSED or fullname.startswith(_UNUSED + "."):
            raise ModuleNotFoundError(f"No module named {fullname!r} (not used by a server)", name=fullname)
        return None


def keep_client_libraries_out() -> None:
    """Call first thing in a process that serves and never uses pymilvus's client or pandas
    (a process that already imported either is left as it is)."""
    if "pymilvus" not in sys.modules:
        spec = importlib.util.find_spec("pymilvus")
        if spec is not None and spec.submodule_search_locations is not None:
            package = types.ModuleType("pymilvus")
            package.__path__ = list(spec.submodule_search_locations)
            sys.modules["pymilvus"] = package
    if _UNUSED not in sys.modules and not any(isinstance(f, _Unused) for f in sys.meta_path):
        sys.meta_path.insert(0, _Unused())
