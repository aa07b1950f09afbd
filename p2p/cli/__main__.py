"""`python -m p2p.cli`, as the tests and the daemon harness run it."""

import sys

from . import main

sys.exit(main())
