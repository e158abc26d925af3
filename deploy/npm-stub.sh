#!/bin/sh
# /opt/serena/tools/bin/npm in the image. Serena checks that npm is on PATH before it looks for
# its TypeScript language server, which the image preinstalled (deploy/install-language-servers.sh);
# nothing is ever installed at run time, so this npm only says so.
echo "npm is not available in the serena-remote image: its language servers are preinstalled (docs/cloudflare.md, Language servers)" >&2
exit 1
