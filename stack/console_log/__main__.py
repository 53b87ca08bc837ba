"""`python3 -m console_log [--host H] [--port N]` with cwd stack/ (or /srv in the container)."""

import sys

from console_log.receiver import main

sys.exit(main())
