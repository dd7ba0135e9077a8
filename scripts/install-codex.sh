#!/usr/bin/env bash
# Installs the pinned OpenAI Codex CLI with npm into DIR (kept between runs: nothing is done when
# the right version is already there) and prints the path of its binary. The test suite drives
# it against ccfleet's /v1/responses (tests/e2e/test_codex.py); the fleet itself never runs it.
#   scripts/install-codex.sh DIR [VERSION]
# VERSION defaults to pyproject.toml's [tool.ccfleet] codex-version.
set -euo pipefail

dir="${1:?usage: install-codex.sh DIR [VERSION]}"
pyproject="$(dirname "$0")/../pyproject.toml"
version="${2:-$(sed -n 's/^codex-version = "\(.*\)"/\1/p' "$pyproject")}"
[ -n "$version" ] || { echo "no codex-version in $pyproject" >&2; exit 1; }

bin="$dir/node_modules/.bin/codex"
installed() { [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qFw "$version"; }
if ! installed; then
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error \
    "@openai/codex@$version" >&2
  installed || { echo "codex $version did not install into $dir" >&2; exit 1; }
fi
echo "$bin"
