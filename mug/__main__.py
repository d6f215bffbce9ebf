"""``python -m mug``: the ``mug`` command line."""

import sys

from mug.cli import main

sys.exit(main())
