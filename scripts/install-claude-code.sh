#!/usr/bin/env bash
# Installs the pinned Claude Code CLI with npm into DIR (kept between runs: nothing is done when
# the right version is already there) and prints the path of its binary.
#   scripts/install-claude-code.sh DIR [VERSION]
# VERSION defaults to pyproject.toml's [tool.ccfleet] claude-code-version. tests/run.sh and
# k8s/Dockerfile both install the CLI with this script, so the image runs the CLI the suite ran.
set -euo pipefail

dir="${1:?usage: install-claude-code.sh DIR [VERSION]}"
pyproject="$(dirname "$0")/../pyproject.toml"
version="${2:-$(sed -n 's/^claude-code-version = "\(.*\)"/\1/p' "$pyproject")}"
[ -n "$version" ] || { echo "no claude-code-version in $pyproject" >&2; exit 1; }

bin="$dir/node_modules/.bin/claude"
installed() { [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qFw "$version"; }
if ! installed; then
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error \
    "@anthropic-ai/claude-code@$version" >&2
  installed || { echo "claude $version did not install into $dir" >&2; exit 1; }
fi
echo "$bin"
