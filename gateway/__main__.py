"""`python -m gateway` runs the daemon."""

import sys

from gateway.cli import main

# Guarded: the body parser's worker processes are spawned, and a spawned child imports the
# parent's main module (as `__mp_main__`); it must not start a second daemon.
if __name__ == "__main__":
    sys.exit(main())
