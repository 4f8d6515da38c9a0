"""``python -m broker`` is the ``toshi`` command."""

import sys

from broker.cli import main

sys.exit(main())
