"""``python -m phi4_standin``: see ``cli.py``."""

import sys

from .cli import main

sys.exit(main())
