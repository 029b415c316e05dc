"""``python -m qmix`` is the ``qmix`` command."""

import sys

from qmix.cli import main

sys.exit(main())
