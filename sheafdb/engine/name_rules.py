"""Milvus's rules for the names a request carries, checked before any lookup.

Every facade call that names a collection, alias, partition, database, field or index runs
the matching check first, so a malformed name is answered alike on gRPC and REST, and never
as "not found". The texts and codes are Milvus's proxy's (``internal/proxy/util.go``):

- collection / alias: 1100 ``Invalid collection name: X. the first character of a collection
  name must be an underscore or letter: invalid parameter`` (and ``alias`` variants);
- partition: 1100 ``Invalid partition name: X. The first character of a partition name must
  be an underscore or letter.: invalid parameter`` (a digit may come first, ``-`` inside);
- index: 1100, as the partition text with ``index``;
- database: 802 ``the first character of a database name must be an underscore or letter:
  invalid database name[database=X]``;
- field: 1701 ``Invalid field name: X. The first character of a field name must be an
  underscore or letter.: field name invalid[field=X]``.
"""

from __future__ import annotations

from sheafdb.errors import FieldNameInvalid, InvalidDatabaseName, invalid

MAX_NAME_LENGTH = 255


def _is_letter(ch: str) -> bool:
    return ch.isascii() and ch.isalpha()


def _is_word(ch: str) -> bool:
    return ch == "_" or (ch.isascii() and ch.isalnum())


def _first_bad(name: str, allowed_inside: str = "") -> str | None:
    """Which rule ``name`` breaks: "length", "first", "chars" or None (plain identifiers)."""
    if len(name) > MAX_NAME_LENGTH:
        return "length"
    # An ASCII identifier is exactly [A-Za-z_][A-Za-z0-9_]*: every request checks a name, and
    # this answers the usual one in C instead of a loop over its characters.
    if name.isascii() and name.isidentifier():
        return None
    if not (name[0] == "_" or _is_letter(name[0])):
        return "first"
    if any(not (_is_word(ch) or ch in allowed_inside) for ch in name[1:]):
        return "chars"
    return None


def _collection_or_alias(name: str, kind: str) -> None:
    """``kind``: "name" or "alias" (Milvus words it "collection name" / "collection alias")."""
    if not name.strip():
        raise invalid(f"collection {kind} should not be empty")
    broken = _first_bad(name)
    if broken is None:
        return  # every read checks its collection's name: no message text built for a good one
    label = f"collection {kind}"
    head = f"Invalid {label}: {name}."
    if broken == "length":
        raise invalid(f"{head} the length of a {label} must be less than {MAX_NAME_LENGTH} characters")
    if broken == "first":
        raise invalid(f"{head} the first character of a {label} must be an underscore or letter")
    if broken == "chars":
        raise invalid(f"{head} {label} can only contain numbers, letters and underscores")


def check_collection_name(name: str) -> None:
    _collection_or_alias(name, "name")


def check_alias(name: str) -> None:
    _collection_or_alias(name, "alias")


def check_partition_name(name: str, *, strict: bool = True) -> None:
    """``strict`` False (search / query partition lists): only emptiness and length."""
    name = name.strip()
    head = f"Invalid partition name: {name}. "
    if not name:
        raise invalid(head + "Partition name should not be empty.")
    if len(name) > MAX_NAME_LENGTH:
        raise invalid(f"{head}The length of a partition name must be less than {MAX_NAME_LENGTH} characters.")
    if not strict:
        return
    if not (name[0] == "_" or _is_letter(name[0]) or name[0].isascii() and name[0].isdigit()):
        raise invalid(head + "The first character of a partition name must be an underscore or letter.")
    if any(not (_is_word(ch) or ch == "-") for ch in name[1:]):
        raise invalid(head + "Partition name can only contain numbers, letters and underscores.")


def check_index_name(name: str) -> None:
    """An empty index name is allowed (it defaults to the field's name)."""
    name = name.strip()
    if not name:
        return
    head = f"Invalid index name: {name}. "
    broken = _first_bad(name)
    if broken == "length":
        raise invalid(head + f"The length of a index name must be less than {MAX_NAME_LENGTH} characters.")
    if broken == "first":
        raise invalid(head + "The first character of a index name must be an underscore or letter.")
    if broken == "chars":
        raise invalid(head + "Index name can only contain numbers, letters, and underscores.")


def check_database_name(name: str) -> None:
    def refuse(reason: str) -> InvalidDatabaseName:
        return InvalidDatabaseName(f"{reason}: invalid database name[database={name}]")

    if not name:
        raise refuse("database name couldn't be empty")
    broken = _first_bad(name)
    if broken == "length":
        raise refuse(f"the length of a database name must be less than {MAX_NAME_LENGTH} characters")
    if broken == "first":
        raise refuse("the first character of a database name must be an underscore or letter")
    if broken == "chars":
        raise refuse("database name can only contain numbers, letters and underscores")


def check_field_name(name: str) -> None:
    stripped = name.strip()

    def refuse(reason: str) -> FieldNameInvalid:
        return FieldNameInvalid(f"{reason}: field name invalid[field={stripped}]")

    if not stripped:
        raise refuse("field name should not be empty")
    head = f"Invalid field name: {stripped}. "
    broken = _first_bad(stripped)
    if broken == "length":
        raise refuse(head + f"The length of a field name must be less than {MAX_NAME_LENGTH} characters.")
    if broken == "first":
        raise refuse(head + "The first character of a field name must be an underscore or letter.")
    if broken == "chars":
        raise refuse(head + "Field name can only contain numbers, letters, and underscores.")
