"""``python -m rilib`` is the ``rilib`` command."""

import sys

from .cli import main

sys.exit(main())
