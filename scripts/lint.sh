#!/usr/bin/env bash
# Style gates: clang-format (the .clang-format at the root) and the banned
# functions of DESIGN.md rule 6. Exits non-zero listing every offender.
set -uo pipefail
cd "$(dirname "$0")/.."
rc=0
dirs="src tests fuzz bench"
files=$(git ls-files -- $dirs | grep -E '\.[ch]$'; git ls-files --others --exclude-standard -- $dirs | grep -E '\.[ch]$' | grep -v node_modules)
files=$(printf '%s\n' $files | sort -u)
CF=$(command -v clang-format-14 || command -v clang-format)
bad=""
for f in $files; do
    [ -f "$f" ] || continue
    "$CF" --dry-run -Werror "$f" >/dev/null 2>&1 || bad="$bad $f"
done
if [ -n "$bad" ]; then
    echo "lint: not clang-formatted (run: $CF -i <file>):$bad"
    rc=1
fi
# Banned calls: strcpy strcat sprintf vsprintf gets atoi atol strtok system popen.
banned=$(grep -nE '(^|[^A-Za-z0-9_])(strcpy|strcat|sprintf|vsprintf|gets|atoi|atol|strtok|system|popen)[[:space:]]*\(' $files 2>/dev/null \
    | grep -v '^[^:]*:[0-9]*:[[:space:]]*/\?\*')
if [ -n "$banned" ]; then
    echo "lint: banned functions (DESIGN.md rule 6):"
    echo "$banned"
    rc=1
fi
# memcmp on secrets: the token table and auth compare with sr_mem_eq_ct only.
secrets=$(grep -nE 'memcmp[[:space:]]*\(' src/core/tokens.c src/core/auth.c 2>/dev/null)
if [ -n "$secrets" ]; then
    echo "lint: memcmp in secret-handling code (use sr_mem_eq_ct):"
    echo "$secrets"
    rc=1
fi
[ $rc = 0 ] && echo "lint: OK ($(echo $files | wc -w) files)"
exit $rc
