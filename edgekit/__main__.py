"""`python -m edgekit`: the command line (edgekit.cli)."""

import sys

from .cli import main

sys.exit(main())
