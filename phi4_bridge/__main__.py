"""``python -m phi4_bridge ...``: the command line, ``phi4_bridge.cli.main`` (docs/cli.md)."""

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
