#!/usr/bin/env bash
# The MCP Inspector's CLI as a third-party client: tools/list, then one tools/call search.
# Indexes this repository into a temporary data dir; needs node/npm (installs the
# @modelcontextprotocol/inspector package into .inspector/ on first use).
set -euo pipefail
cd "$(dirname "$0")/.."
BIN="${VENV:-.venv}/bin"
if [ ! -x .inspector/node_modules/.bin/mcp-inspector ]; then
    mkdir -p .inspector
    npm install --silent --prefix .inspector @modelcontextprotocol/inspector >/dev/null
fi
export CONTEXTD_HOME="$(mktemp -d)"
trap '"$BIN/contextd" stop >/dev/null 2>&1 || true; rm -rf "$CONTEXTD_HOME"' EXIT
"$BIN/contextd" add . --name contextd --no-hooks >/dev/null
"$BIN/contextd" start >/dev/null
"$BIN/contextd" index >/dev/null
inspect() {
    .inspector/node_modules/.bin/mcp-inspector --cli -e "CONTEXTD_HOME=$CONTEXTD_HOME" \
        "$PWD/$BIN/contextd" mcp "$@" 2> >(grep -v "npm warn" >&2)
}
echo "\$ mcp-inspector --cli contextd mcp --method tools/list"
inspect --method tools/list | python3 -c 'import json,sys; d=json.load(sys.stdin); print(json.dumps({"tools": [{"name": t["name"], "description": t["description"][:90] + "..."} for t in d["tools"]]}, indent=2))'
echo "\$ mcp-inspector --cli contextd mcp --method tools/call --tool-name search --tool-arg 'query=how are files cut into chunks by syntax' --tool-arg k=2"
inspect --method tools/call --tool-name search --tool-arg "query=how are files cut into chunks by syntax" --tool-arg k=2 \
    | python3 -c 'import json,sys; d=json.load(sys.stdin); r=d["structuredContent"]; print(json.dumps({"isError": d["isError"], "results": [{k: h[k] for k in ("source","path","start_line","end_line","symbol","score","indexed_commit","stale")} for h in r["results"]]}, indent=2))'
