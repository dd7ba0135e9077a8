#!/usr/bin/env bash
# Installs the pinned OpenAI Codex CLI with npm into DIR (kept between runs: nothing is done when
# the right version is already there) and prints the path of its binary. The test suite drives
# it against ccfleet's /v1/responses (tests/e2e/test_codex.py); the fleet itself never runs it.
#   scripts/install-codex.sh DIR [VERSION]
# VERSION defaults to pyproject.toml's [tool.ccfleet] codex-version. The install itself is
# scripts/install-npm-cli.sh's, shared with install-claude-code.sh.
set -euo pipefail

: "${1:?usage: install-codex.sh DIR [VERSION]}"
exec "$(dirname "$0")/install-npm-cli.sh" @openai/codex codex codex-version "$@"
