"""``python -m defbuilder``: the same as the ``defbuilder`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
