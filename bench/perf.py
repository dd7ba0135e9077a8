"""Every performance figure of ccfleet in one run: `uv run python bench/perf.py [--quick]`.

Runs, one after the other so they do not share the CPU, each repeating its measurement:
1. bench/ttft.py         time to first token through ccfleet vs the CLI spawned directly, in
                         the same run (ratio), dispatch (enqueue -> worker claims the job),
                         ready-CLI hit rate and memory;
2. bench/idle_worker.py  an idle worker's CPU and Redis commands per second;
3. bench/gateway_cpu.py  front end + worker CPU per request;
4. bench/many_streams.py one front end relaying 1,000 concurrent streams (5 runs: a tail);
5. bench/affinity.py     follow-ups on their conversation's account, 3 accounts, one cooling;
6. bench/batches.py      creating a batch of 10,000, and batch throughput with the fake CLI.
Then prints every figure in one Markdown table (median and min-max of the runs), under the
date, the core count and the load average at the start: the README's table as it stands.
The real CLI is needed for 1 (`--claude-bin` or CCFLEET_TEST_CLAUDE_BIN); the others use the
zero-cost fake CLI or none. `--quick` runs fewer and smaller runs (a smoke test of the figures).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repo root, for bench.*

from bench.spread import Figures, machine_line

BENCH = Path(__file__).resolve().parent


def parts(quick: bool, cli: list[str]) -> list[list[str]]:
    """Each part's script and arguments: full size, or `quick`."""
    runs = ["--runs", "2"] if quick else []
    return [
        ["ttft.py", "--requests", "4" if quick else "15", *runs, *cli],
        ["idle_worker.py", "--seconds", "3" if quick else "10", *runs, *cli],
        ["gateway_cpu.py", "--requests", "30" if quick else "200", *runs],
        ["many_streams.py", "--streams", "200" if quick else "1000", *runs],
        ["affinity.py", "--conversations", "8" if quick else "30", *runs],
        ["batches.py", "--cli", "fake", "--create", "1000" if quick else "10000",
         "--process", "20" if quick else "100", *runs],
    ]  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--claude-bin", default=os.environ.get("CCFLEET_TEST_CLAUDE_BIN", ""))
    args = parser.parse_args()
    cli = ["--claude-bin", args.claude_bin] if args.claude_bin else []
    heading = f"ccfleet benchmarks: {machine_line()}"
    print(heading, flush=True)
    figures = Figures()
    failed: list[str] = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="ccfleet-perf-") as folder:
        for script, *script_args in parts(args.quick, cli):
            saved = Path(folder) / f"{script}.json"
            print(f"\n== {script} {' '.join(script_args)}", flush=True)
            part_started = time.monotonic()
            done = subprocess.run(
                [sys.executable, str(BENCH / script), *script_args, "--figures", str(saved)],
                stderr=subprocess.DEVNULL,
            )
            print(f"({script}: {time.monotonic() - part_started:.0f} s)", flush=True)
            if done.returncode != 0 or not saved.exists():
                failed.append(script)
                continue
            figures.extend(Figures.load(saved))
    print(f"\n{heading}; all parts took {(time.monotonic() - started) / 60:.1f} min")
    figures.print()
    if failed:
        print(f"failed: {', '.join(failed)}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
