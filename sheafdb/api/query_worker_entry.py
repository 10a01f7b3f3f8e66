"""A query worker as a fresh interpreter: ``python -m sheafdb.api.query_worker_entry``.

The server forks its workers from a template (worker_template.py); this starts the same worker
by hand, and its command line is what ``ps`` shows for each forked worker.

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
