"""`python -m tests.containers.make_base`: make the containers' Debian base tarball ahead of
the suite (tests/run.sh, while the static checks run), so that on a fresh machine the first
container test does not wait for mmdebstrap (~1 min). Prints where it is; exits 1 if it
cannot be made (the container tests then make it, or skip and say why)."""

from __future__ import annotations

import sys

from tests.containers.engine import EngineUnavailable, base_tarball


def main() -> int:
    try:
        print(base_tarball())
    except (EngineUnavailable, RuntimeError, OSError) as exc:
        print(f"the containers' base was not made: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
