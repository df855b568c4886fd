"""An application that embeds the gateway keeps its process-wide settings: the traceback limit is held at 0 only
while a gateway serves (so status messages carry no frames), and given back when the last one stops."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_the_traceback_limit_is_the_applications_again_after_the_gateway_stops(tmp_path):
    script = textwrap.dedent(f"""
        import sys
        from nexus_flight.core.settings import ServerSettings
        from nexus_flight.server.app.gateway import Gateway

        sys.tracebacklimit = 7
        gateway = Gateway(ServerSettings(port=0, data_dir={str(tmp_path)!r}, demo_scale=None))
        assert sys.tracebacklimit == 7, "building a gateway changed it"
        gateway.start()
        assert sys.tracebacklimit == 0, "while serving, status messages must carry no frames"
        gateway.shutdown()
        assert sys.tracebacklimit == 7, sys.tracebacklimit
        del sys.tracebacklimit
        Gateway(ServerSettings(port=0, data_dir={str(tmp_path)!r}, demo_scale=None)).start().shutdown()
        assert not hasattr(sys, "tracebacklimit"), "an unset limit stays unset"
        print("ok")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "ok", done.stderr
