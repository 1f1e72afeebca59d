"""`python -m gateway` runs the daemon."""

import sys

from gateway.cli import main

sys.exit(main())
