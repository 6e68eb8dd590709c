"""``python -m inpars.cli``: the same as the ``inpars`` command."""

import sys

from inpars.cli import main

sys.exit(main())
