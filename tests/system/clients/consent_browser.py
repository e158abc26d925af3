#!/usr/bin/env python3
"""A scripted browser for OAuth tests: what a person does on serena-remote's consent page.

Called as BROWSER (by xdg-open, which mcp-remote's `open` runs) with the authorization URL.
It GETs the page with a cookie jar, fills the form with the token in SR_CONSENT_TOKEN, POSTs
it, and follows the 302 to the client's loopback callback, as a browser would. Each step is
appended to SR_CONSENT_LOG (no token is written there). Exit 0 when the callback answered.
"""

from __future__ import annotations

import html
import http.cookiejar
import os
import re
import sys
import urllib.parse
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def log(msg: str) -> None:
    path = os.environ.get("SR_CONSENT_LOG")
    if path:
        with open(path, "a") as f:
            f.write(msg + "\n")


def main() -> int:
    url = sys.argv[1]
    log(f"open {urllib.parse.urlsplit(url).path}")
    jar = http.cookiejar.CookieJar()
    proxy = urllib.request.ProxyHandler({})
    opener = urllib.request.build_opener(proxy, urllib.request.HTTPCookieProcessor(jar), NoRedirect)
    with opener.open(url, timeout=30) as r:
        page = r.read().decode()
    fields = {m.group(1): html.unescape(m.group(2))
              for m in re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page)}
    fields["token"] = os.environ["SR_CONSENT_TOKEN"]
    fields["action"] = "allow"
    parts = urllib.parse.urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    req = urllib.request.Request(origin + "/oauth/authorize", data=urllib.parse.urlencode(fields).encode(),
                                 headers={"Origin": origin,
                                          "Content-Type": "application/x-www-form-urlencoded"})
    try:
        opener.open(req, timeout=30)
        log("consent: no redirect")
        return 1
    except urllib.error.HTTPError as e:
        if e.code != 302:
            log(f"consent: {e.code}")
            return 1
        location = e.headers["Location"]
    log(f"consent: 302 to {urllib.parse.urlsplit(location).netloc}")
    with urllib.request.build_opener(proxy).open(location, timeout=30) as r:
        log(f"callback: {r.status}")
        return 0 if r.status == 200 else 1


if __name__ == "__main__":
    sys.exit(main())
