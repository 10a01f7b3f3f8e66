"""AddCollectionFunction / AlterCollectionFunction / DropCollectionFunction, with Milvus 2.6's rules.

Milvus 2.6's proxy refuses to add, alter or drop a BM25 function after the collection is
created (its output field would have to be refilled for every existing row), and checks any
other function type as create does. SheafDB runs BM25 functions only (the other types call a
model service and are refused at create), so no collection ever holds a function these RPCs may
change: each answers what Milvus answers for the same request, in Milvus's order of checks and
with its texts (plain errors there; parameter errors, code 1100, here). Dropping a function
that does not exist succeeds, as in Milvus.
"""

from __future__ import annotations

from collections.abc import Callable

from sheafdb.engine.collection import Collection
from sheafdb.engine.text_rules import check_function
from sheafdb.errors import ParameterInvalid
from sheafdb.schema_functions import FunctionSchema, FunctionType

# The collection the request names, looked up only once the request's own checks pass
# (Milvus checks the function before the collection).
Resolve = Callable[[], Collection]


def check_add(resolve: Resolve, function: FunctionSchema | None) -> None:
    if function is None:
        raise ParameterInvalid("Function Schema is empty")
    if function.type is FunctionType.BM25:
        raise ParameterInvalid("Currently does not support adding BM25 function")
    collection = resolve()
    if any(f.name == function.name for f in collection.schema.functions):
        raise ParameterInvalid(f"function name already exists: {function.name}")
    check_function(collection.schema, function)  # the other types: refused as at create


def check_alter(resolve: Resolve, name: str, function: FunctionSchema | None) -> None:
    if function is None:
        raise ParameterInvalid("Function Schema is empty")
    if function.type is FunctionType.BM25:
        raise ParameterInvalid("Currently does not support alter BM25 function")
    if function.name != name:
        raise ParameterInvalid("Invalid function config, name not match")
    collection = resolve()
    existing = next((f for f in collection.schema.functions if f.name == name), None)
    if existing is None:
        raise ParameterInvalid(f"Function {name} not found")
    if existing.type is FunctionType.BM25:
        raise ParameterInvalid("Currently does not support alter BM25 function")
    check_function(collection.schema, function)


def check_drop(resolve: Resolve, name: str) -> None:
    collection = resolve()
    existing = next((f for f in collection.schema.functions if f.name == name), None)
    if existing is None:
        return  # nothing to drop: success, as Milvus
    # Every function a collection holds is BM25 (create refuses the others).
    raise ParameterInvalid("Currently does not support droping BM25 function")  # Milvus's spelling
