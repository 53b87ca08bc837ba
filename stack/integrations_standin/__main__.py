"""`python3 -m integrations_standin [--host H] [--port N]` with cwd stack/ (or /srv in the container)."""

import sys

from integrations_standin.server import main

sys.exit(main())
