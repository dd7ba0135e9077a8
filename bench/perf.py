"""Every performance figure of ccfleet in one run: `uv run python bench/perf.py [--quick]`.

Runs, one after the other so they do not share the CPU:
1. bench/ttft.py       time to first token through ccfleet vs the CLI spawned directly, in the
                       same run (ratio), dispatch (enqueue -> worker claims the job), ready-CLI
                       hit rate and memory;
2. bench/idle_worker.py  an idle worker's CPU and Redis commands per second;
3. bench/gateway_cpu.py  front end + worker CPU per request;
4. bench/many_streams.py one front end relaying 1,000 concurrent streams;
5. bench/affinity.py   follow-ups on their conversation's account, 3 accounts, one cooling.
The real CLI is needed for 1 (`--claude-bin` or CCFLEET_TEST_CLAUDE_BIN); the others use the
zero-cost fake CLI or none. `--quick` runs smaller sizes (a smoke test of the figures).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--claude-bin", default=os.environ.get("CCFLEET_TEST_CLAUDE_BIN", ""))
    args = parser.parse_args()
    cli = ["--claude-bin", args.claude_bin] if args.claude_bin else []
    runs = [
        ["ttft.py", "--requests", "6" if args.quick else "20", *cli],
        ["idle_worker.py", "--seconds", "5" if args.quick else "20", *cli],
        ["gateway_cpu.py", "--requests", "40" if args.quick else "200"],
        ["many_streams.py", "--streams", "200" if args.quick else "1000"],
        ["affinity.py", "--conversations", "12" if args.quick else "30"],
    ]
    print(f"ccfleet benchmarks: {os.cpu_count()} cores, {time.strftime('%Y-%m-%d %H:%M %Z')}")
    failed = 0
    for script, *script_args in runs:
        print(f"\n== {script} {' '.join(script_args)}", flush=True)
        done = subprocess.run(
            [sys.executable, str(BENCH / script), *script_args], stderr=subprocess.DEVNULL
        )
        failed += done.returncode != 0
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
