"""``python -m defbuilder``: the same as the ``defbuilder`` command."""

import sys

from .cli import main

sys.exit(main())
