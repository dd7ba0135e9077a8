#!/usr/bin/env bash
# Installs a pinned npm CLI into DIR (kept between runs: nothing is done when the right version
# is already there) and prints the path of its binary. The one install path behind
# install-claude-code.sh and install-codex.sh:
#   scripts/install-npm-cli.sh PACKAGE BIN PIN DIR [VERSION]
# PACKAGE is the npm package, BIN the binary it puts in node_modules/.bin, PIN the key in
# pyproject.toml's [tool.ccfleet] that VERSION defaults to.
set -euo pipefail

usage="usage: install-npm-cli.sh PACKAGE BIN PIN DIR [VERSION]"
package="${1:?$usage}"
name="${2:?$usage}"
pin="${3:?$usage}"
dir="${4:?$usage}"
pyproject="$(dirname "$0")/../pyproject.toml"
version="${5:-$(sed -n "s/^$pin = \"\(.*\)\"/\1/p" "$pyproject")}"
[ -n "$version" ] || { echo "no $pin in $pyproject" >&2; exit 1; }

bin="$dir/node_modules/.bin/$name"
installed() { [ -x "$bin" ] && "$bin" --version 2>/dev/null | grep -qFw "$version"; }
if ! installed; then
  mkdir -p "$dir"
  npm install --prefix "$dir" --no-save --no-audit --no-fund --loglevel=error \
    "$package@$version" >&2
  installed || { echo "$name $version did not install into $dir" >&2; exit 1; }
fi
echo "$bin"
