"""``python -m graph_router.modelhost serve|list``: the model host without the router's CLI."""

from __future__ import annotations

import sys

from .cli import main

sys.exit(main())
