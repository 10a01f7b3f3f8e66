"""SheafDB: a vector database server that speaks Milvus's protocols."""

import os

# Arrow's C++ default pool is chosen when pyarrow is first imported, and its default
# (mimalloc) keeps freed pages per thread, so a release would not give them back to the OS.
# The system allocator does, with the policy the memory accountant sets (engine/load/memory.py).
# Set before anything imports pyarrow; a value the user set wins.
os.environ.setdefault("ARROW_DEFAULT_MEMORY_POOL", "system")
