"""``make run``: ``python -m chalicelib.local`` serves Herald on an embedded AWS (see runner)."""

import sys

from chalicelib.local.runner import main

sys.exit(main())
