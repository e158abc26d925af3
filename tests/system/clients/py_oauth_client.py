"""The Python SDK (`mcp` 1.x) signing in with OAuth: OAuthClientProvider + streamablehttp_client.

    SR_CONSENT_TOKEN=<token> python py_oauth_client.py URL

The SDK discovers the server from the 401, registers, and hands the authorization URL to
redirect_handler; that handler plays the person on the consent page (GET it, POST the form with
SR_CONSENT_TOKEN, read the code from the 302) and callback_handler returns the code. Then one
session: initialize, tools/list; then the refresh grant through the SDK's stored tokens, and a
second session with the refreshed access token. Prints one JSON document; exit 0 when "ok".
"""

import html
import json
import os
import re
import sys
import urllib.parse

import anyio
import httpx
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

REDIRECT = "http://localhost:3030/callback"


class Memory(TokenStorage):
    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self) -> OAuthToken | None:
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken) -> None:
        self.tokens = tokens

    async def get_client_info(self) -> OAuthClientInformationFull | None:
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull) -> None:
        self.client = client_info


def exc_text(e: BaseException) -> str:
    if isinstance(e, BaseExceptionGroup):
        return "; ".join(exc_text(x) for x in e.exceptions)
    return f"{type(e).__name__}: {e}"


async def main(url: str, out: dict) -> None:
    got: dict = {}

    async def redirect_handler(auth_url: str) -> None:
        # The person's browser: the consent page, then the form.
        async with httpx.AsyncClient(trust_env=False) as b:
            page = await b.get(auth_url)
            assert page.status_code == 200, page.status_code
            fields = {m.group(1): html.unescape(m.group(2)) for m in
                      re.finditer(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text)}
            fields.update(token=os.environ["SR_CONSENT_TOKEN"], action="allow")
            origin = "{0.scheme}://{0.netloc}".format(urllib.parse.urlsplit(auth_url))
            r = await b.post(origin + "/oauth/authorize", data=fields, headers={"Origin": origin})
            assert r.status_code == 302, r.status_code
            q = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(r.headers["location"]).query))
            got.update(code=q["code"], state=q.get("state"), iss=q.get("iss"))

    async def callback_handler() -> tuple[str, str | None]:
        return got["code"], got["state"]

    storage = Memory()
    auth = OAuthClientProvider(url, OAuthClientMetadata(
        client_name="sr-system-test python", redirect_uris=[REDIRECT],
        grant_types=["authorization_code", "refresh_token"], response_types=["code"]),
        storage, redirect_handler, callback_handler)
    async with streamablehttp_client(url, auth=auth) as (read, write, _):
        async with ClientSession(read, write) as s:
            await s.initialize()
            out["tools"] = [t.name for t in (await s.list_tools()).tools]
    out["iss"] = got.get("iss")
    first = storage.tokens
    # Refresh as the SDK would when its access token expires, then use the new one.
    async with httpx.AsyncClient(trust_env=False) as h:
        r = await h.post(url.rsplit("/mcp", 1)[0] + "/oauth/token", data={
            "grant_type": "refresh_token", "refresh_token": first.refresh_token,
            "client_id": storage.client.client_id})
        assert r.status_code == 200, r.text
        new = r.json()
    out["rotated"] = new["refresh_token"] != first.refresh_token
    async with streamablehttp_client(url, headers={"Authorization": f"Bearer {new['access_token']}"}) as (read, write, _):
        async with ClientSession(read, write) as s:
            await s.initialize()
            out["tools_after_refresh"] = len((await s.list_tools()).tools)
    out["ok"] = True


async def guarded(url: str, out: dict) -> None:
    # A hang becomes a failure (SR_CLIENT_GUARD_S, default 30 s), never an assertion on time.
    with anyio.fail_after(float(os.environ.get("SR_CLIENT_GUARD_S", "30"))):
        await main(url, out)


if __name__ == "__main__":
    result: dict = {"ok": False}
    try:
        anyio.run(guarded, sys.argv[1], result)
    except BaseException as e:  # noqa: BLE001 (report any failure as data)
        result["error"] = exc_text(e)
    print(json.dumps(result))
    sys.exit(0 if result.get("ok") else 1)
