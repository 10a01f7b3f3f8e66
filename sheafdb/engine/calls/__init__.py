"""The Engine facade's calls, one module per concern (databases, partitions, aliases, loads,
writes).

Each is a mixin of ``Engine`` (engine.py), which builds the parts they use (``EngineParts``
names them) and holds the rest of the facade: collections, indexes and reads. The
locks are the facade's: a metadata change takes ``_ddl_lock`` (engine.py's docstring).
"""
