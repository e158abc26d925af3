#!/usr/bin/env bash
# Language servers for the image, pinned in versions.env, installed so that Serena never
# downloads one at run time (deploy/Dockerfile.cloudflare runs each in its own build stage; the
# runtime image copies the results).
#
#   install-language-servers.sh typescript PREFIX
#       typescript + typescript-language-server (npm) into
#       PREFIX/language_servers/static/TypeScriptLanguageServer/ts-lsp: the directory Serena
#       2.1 installs them to under its SERENA_HOME (solidlsp's ls_resources_dir, "ts-lsp" for
#       its default versions). The gateway links PREFIX/language_servers/static/* into every
#       instance's SERENA_HOME, so Serena finds them installed, and pins tsserver to this
#       TypeScript (it refuses an untrusted project's own node_modules/typescript).
#   install-language-servers.sh go PREFIX
#       gopls, built with the Go toolchain on PATH from the Go module proxy, into PREFIX/bin
#       (Serena runs `gopls` and `go` from PATH).
#   install-language-servers.sh goroot DEST
#       the part of the Go toolchain on PATH that gopls needs at run time, copied to DEST (the
#       image's GOROOT): the `go` command (gopls loads packages with `go list`, which insists
#       that compile, asm, cgo and link exist) and the standard library's sources (gopls
#       type-checks them). Left out: the precompiled standard library, the other tools, the
#       toolchain's own sources (src/cmd) and every testdata directory: 474 MB -> about 90 MB.
#
# Adding another language: see docs/cloudflare.md, "Language servers".
set -euo pipefail
. "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
load_versions

what=${1:?usage: install-language-servers.sh typescript|go|goroot PREFIX}
PREFIX=${2:?usage: install-language-servers.sh typescript|go|goroot PREFIX}

case $what in
    typescript)
        : "${TYPESCRIPT_VERSION:?} ${TYPESCRIPT_LANGUAGE_SERVER_VERSION:?}"
        dir=$PREFIX/language_servers/static/TypeScriptLanguageServer/ts-lsp
        mkdir -p "$dir"
        npm install --prefix "$dir" --no-audit --no-fund --no-save --omit=dev \
            "typescript@$TYPESCRIPT_VERSION" "typescript-language-server@$TYPESCRIPT_LANGUAGE_SERVER_VERSION" >&2
        got=$(node "$dir/node_modules/typescript-language-server/lib/cli.mjs" --version)
        [ "$got" = "$TYPESCRIPT_LANGUAGE_SERVER_VERSION" ] || die "typescript-language-server reports '$got', expected $TYPESCRIPT_LANGUAGE_SERVER_VERSION"
        [ -d "$dir/node_modules/typescript/lib" ] || die "typescript/lib missing in $dir"
        [ -x "$dir/node_modules/.bin/typescript-language-server" ] || die "typescript-language-server missing in $dir"
        log "typescript $TYPESCRIPT_VERSION, typescript-language-server $got in $dir"
        ;;
    go)
        : "${GOPLS_VERSION:?}"
        mkdir -p "$PREFIX/bin"
        work=$(mktemp -d)
        # No VCS, no cgo, no debug info; the module and build caches are thrown away.
        GOBIN=$PREFIX/bin GOPATH=$work/gopath GOCACHE=$work/cache GOFLAGS=-modcacherw CGO_ENABLED=0 \
            go install -trimpath -ldflags='-s -w' "golang.org/x/tools/gopls@$GOPLS_VERSION" >&2
        rm -rf "$work"
        got=$("$PREFIX/bin/gopls" version | head -1)
        case $got in *"$GOPLS_VERSION"*) ;; *) die "gopls reports '$got', expected $GOPLS_VERSION" ;; esac
        log "$got in $PREFIX/bin ($(go version))"
        ;;
    goroot)
        src=$(go env GOROOT)
        rm -rf "$PREFIX"
        mkdir -p "$PREFIX/bin" "$PREFIX/pkg/tool/linux_amd64"
        cp "$src/bin/go" "$PREFIX/bin/"
        cp "$src/VERSION" "$PREFIX/"
        for t in compile asm cgo link; do cp "$src/pkg/tool/linux_amd64/$t" "$PREFIX/pkg/tool/linux_amd64/"; done
        cp -rL "$src/pkg/include" "$PREFIX/pkg/include"
        tar -C "$src/src" --exclude=./cmd --exclude=testdata -cf - . | { mkdir -p "$PREFIX/src" && tar -C "$PREFIX/src" -xf -; }
        got=$(GOROOT=$PREFIX "$PREFIX/bin/go" version)
        log "$got in $PREFIX ($(du -sh "$PREFIX" | cut -f1))"
        ;;
    *) die "unknown language server set $what (typescript, go or goroot)" ;;
esac
