#!/usr/bin/env python3
"""The "browser" mcp-remote opens in the Worker's OAuth test (xdg-open's BROWSER).

mcp-remote opens the authorization URL first and starts its loopback callback server only after
the opener returned, which a person never notices but a scripted browser does: it reaches the
callback before anything listens there. So this returns at once, as a real browser does, and
in the background waits until the callback port (from the URL's redirect_uri) accepts a
connection, then runs the system tests' scripted browser (tests/system/clients/consent_browser.py)
with the URL. The wait is for a real listener; its bound (30 s) only ends a hang.
"""

import os
import socket
import subprocess
import sys
import time
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
CONSENT = os.path.join(HERE, "..", "..", "..", "tests", "system", "clients", "consent_browser.py")


def main() -> int:
    url = sys.argv[1]
    redirect = urllib.parse.parse_qs(urllib.parse.urlsplit(url).query)["redirect_uri"][0]
    port = urllib.parse.urlsplit(redirect).port
    if os.fork() != 0:
        return 0
    os.setsid()
    end = time.monotonic() + 30
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            time.sleep(0.1)
    os._exit(subprocess.call([sys.executable, CONSENT, url]))


if __name__ == "__main__":
    sys.exit(main())
