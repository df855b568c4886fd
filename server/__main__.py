"""``python -m server``: the same as the ``nexus-flight`` command."""

import sys

from server.cli import main

sys.exit(main())
