"""``python -m phi4_bridge.standin``: see ``cli.py``."""

import sys

from .cli import main

sys.exit(main())
