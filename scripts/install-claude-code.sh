#!/usr/bin/env bash
# Installs the pinned Claude Code CLI with npm into DIR (kept between runs: nothing is done when
# the right version is already there) and prints the path of its binary.
#   scripts/install-claude-code.sh DIR [VERSION]
# VERSION defaults to pyproject.toml's [tool.ccfleet] claude-code-version. tests/run.sh and
# k8s/Dockerfile both install the CLI with this script, so the image runs the CLI the suite ran.
# The install itself is scripts/install-npm-cli.sh's, shared with install-codex.sh.
set -euo pipefail

: "${1:?usage: install-claude-code.sh DIR [VERSION]}"
exec "$(dirname "$0")/install-npm-cli.sh" @anthropic-ai/claude-code claude claude-code-version "$@"
