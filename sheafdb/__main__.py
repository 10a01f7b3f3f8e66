"""``python -m sheafdb serve ...``"""

from __future__ import annotations

import sys

from sheafdb.cli import main

sys.exit(main())
