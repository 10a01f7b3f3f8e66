"""The query worker process's entry point: ``python -m sheafdb.api.query_worker_entry``.

pymilvus's client and pandas are kept out before the worker's modules import anything
(api/client_libraries.py: ~45 MB less per worker).
"""

from __future__ import annotations

import sys

from sheafdb.api.client_libraries import keep_client_libraries_out

if __name__ == "__main__":
    keep_client_libraries_out()
    from sheafdb.api.query_worker import main

    sys.exit(main())
