"""``python -m nexus_flight.server``: the same as the ``nexus-flight`` command."""

import sys

from nexus_flight.server.app.cli import main

sys.exit(main())
