"""Where a process's event loop spends its stalls: loop lag and garbage collection.

`LoopProbe` samples how late a short sleep wakes (a callback that held the loop delays every
other, deliveries included) and times each garbage collection (gc.callbacks), each in wall
time and in the CPU time the thread spent: a stall with as much CPU time is the process's own
work; one without is the machine's (the process waited for a core). Counts and CPU times do
not depend on a quiet machine the way an end-to-end latency does.

A census (`census`, on SIGUSR2 in a probed front end) counts the objects the collector tracks
by type, times one full collection of them, and lists the cyclic garbage made over the next
second (objects only a collection frees, by type; coroutines and frames by function).

`python -m bench.loop_probe --port N --out FILE [--cpython-gc]` runs the front end as
`ccfleet api` does (settings from the environment) with a probe in its loop, and writes the
probe's report (JSON) to FILE when it stops. SIGUSR1 starts the measurement afresh (the
bench sends it once its streams are open). `--cpython-gc` serves with CPython's default
collector settings instead of the front end's (shared/process/collector.py), to compare.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import resource
import signal
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SAMPLE_S = 0.005
STALL_MS = 10
SLOW_GC_MS = 15
GENERATIONS = (0, 1, 2)


@dataclass
class Census:
    objects: int = 0
    full_collection_cpu_ms: float = 0.0
    commonest: list[tuple[str, int]] = field(default_factory=list)
    cyclic_garbage_in_1s: list[tuple[str, int]] = field(default_factory=list)


@dataclass
class LoopProbe:
    """Loop lag (ms late per `SAMPLE_S` sleep) and gc pauses (ms, by generation)."""

    lags_ms: list[float] = field(default_factory=list)
    lag_cpu_ms: list[float] = field(default_factory=list)
    gc_ms: dict[int, list[float]] = field(default_factory=lambda: {g: [] for g in GENERATIONS})
    gc_cpu_ms: dict[int, list[float]] = field(default_factory=lambda: {g: [] for g in GENERATIONS})
    tracked_objects: int = 0
    """Objects the collector tracked when measuring began (a full collection visits each)."""
    census: Census = field(default_factory=Census)
    slow_collections: list[dict[str, float]] = field(default_factory=list)
    """Collections over `SLOW_GC_MS` of CPU: generation, user and system CPU ms, page faults,
    objects collected, seconds into the measurement."""
    _gc_started: tuple[float, float] = (0.0, 0.0)
    _gc_usage: resource.struct_rusage | None = None
    _measuring_since: float = field(default_factory=time.monotonic)
    _task: asyncio.Task[None] | None = None

    def start(self) -> None:
        gc.callbacks.append(self._on_gc)
        self._task = asyncio.get_running_loop().create_task(self._sample())

    def reset(self) -> None:
        """Forget what was measured so far (start-up), keep measuring."""
        self.tracked_objects = len(gc.get_objects())
        self._measuring_since = time.monotonic()
        self.slow_collections.clear()
        for series in (
            self.lags_ms,
            self.lag_cpu_ms,
            *self.gc_ms.values(),
            *self.gc_cpu_ms.values(),
        ):
            series.clear()

    async def stop(self) -> None:
        with contextlib.suppress(ValueError):
            gc.callbacks.remove(self._on_gc)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def take_census(self) -> None:
        """Stalls the loop for a full collection and more: a diagnosis, not a measurement."""
        objects = gc.get_objects()
        self.census.objects = len(objects)
        self.census.commonest = Counter(_kind(o) for o in objects).most_common(25)
        del objects
        cpu = time.thread_time()
        gc.collect()
        self.census.full_collection_cpu_ms = 1000 * (time.thread_time() - cpu)
        gc.set_debug(gc.DEBUG_SAVEALL)  # what collections find goes to gc.garbage, kept
        asyncio.get_running_loop().call_later(1.0, self._count_garbage)

    def _count_garbage(self) -> None:
        gc.collect()
        gc.set_debug(0)
        kinds: Counter[str] = Counter(_kind(o) for o in gc.garbage)
        self.census.cyclic_garbage_in_1s = kinds.most_common(20)
        gc.garbage.clear()

    async def _sample(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            asked, cpu = loop.time(), time.thread_time()
            await asyncio.sleep(SAMPLE_S)
            self.lags_ms.append(1000 * (loop.time() - asked - SAMPLE_S))
            self.lag_cpu_ms.append(1000 * (time.thread_time() - cpu))

    def _on_gc(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._gc_started = (time.perf_counter(), time.thread_time())
            self._gc_usage = resource.getrusage(resource.RUSAGE_THREAD)
            return
        wall, cpu = self._gc_started
        cpu_ms = 1000 * (time.thread_time() - cpu)
        self.gc_ms[info["generation"]].append(1000 * (time.perf_counter() - wall))
        self.gc_cpu_ms[info["generation"]].append(cpu_ms)
        if cpu_ms > SLOW_GC_MS and self._gc_usage is not None:
            self._note_slow(info, self._gc_usage, resource.getrusage(resource.RUSAGE_THREAD))

    def _note_slow(
        self, info: dict[str, int], before: resource.struct_rusage, after: resource.struct_rusage
    ) -> None:
        self.slow_collections.append(
            {
                "generation": info["generation"],
                "user_ms": 1000 * (after.ru_utime - before.ru_utime),
                "system_ms": 1000 * (after.ru_stime - before.ru_stime),
                "minor_faults": after.ru_minflt - before.ru_minflt,
                "major_faults": after.ru_majflt - before.ru_majflt,
                "collected": info["collected"],
                "at_s": round(time.monotonic() - self._measuring_since, 1),
            }
        )

    def report(self) -> dict[str, Any]:
        return {
            "tracked_objects": self.tracked_objects,
            "lags_ms": self.lags_ms,
            "lag_cpu_ms": self.lag_cpu_ms,
            "gc_ms": {str(g): p for g, p in self.gc_ms.items()},
            "gc_cpu_ms": {str(g): p for g, p in self.gc_cpu_ms.items()},
            "census": vars(self.census),
            "slow_collections": self.slow_collections,
        }


def _kind(thing: object) -> str:
    """Its type; for a coroutine or frame, also its function."""
    name = type(thing).__qualname__
    code = getattr(thing, "cr_code", None) or getattr(thing, "f_code", None)
    return f"{name} {code.co_qualname}" if code is not None else name


def _median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2] if values else 0.0


def summary(report: dict[str, Any]) -> str:
    """Lines: the loop's lag (p99, max; stalls over 10 ms, and how many of those the process
    spent on the CPU); gc pauses by generation (count, wall, CPU); the census if one was taken."""
    lags, cpus = report["lags_ms"], report["lag_cpu_ms"]
    stalls = [(lag, cpu) for lag, cpu in zip(lags, cpus, strict=True) if lag > STALL_MS]
    own = [cpu for lag, cpu in stalls if cpu >= lag / 2]
    ordered = sorted(lags) or [0.0]
    lines = [
        f"loop lag p99 {ordered[int(0.99 * (len(ordered) - 1))]:.1f} ms, max {ordered[-1]:.1f} "
        f"ms; {len(stalls)} stalls > {STALL_MS} ms in {len(lags)} samples, {len(own)} of them "
        f"on the CPU (max {max(own, default=0):.1f} ms of CPU); "
        f"{report['tracked_objects']:,} objects tracked by gc"
    ]
    for gen, walls in report["gc_ms"].items():
        cpu = report["gc_cpu_ms"][gen]
        lines.append(
            f"gc gen{gen}: {len(walls)}x, max {max(walls, default=0):.1f} ms "
            f"(CPU max {max(cpu, default=0):.1f} ms, median {_median(cpu):.1f})"
        )
    if report["slow_collections"]:
        lines.append(f"collections over {SLOW_GC_MS} ms of CPU: {report['slow_collections']}")
    census = report["census"]
    if census["objects"]:
        lines.append(
            f"census: {census['objects']:,} objects, a full collection "
            f"{census['full_collection_cpu_ms']:.0f} ms CPU; commonest {census['commonest']}; "
            f"cyclic garbage in 1 s {census['cyclic_garbage_in_1s']}"
        )
    return "\n    ".join(lines)


async def _serve_probed(port: int, cpython_gc: bool) -> LoopProbe:
    from api.app import front_end_server
    from shared.settings import Settings

    probe = LoopProbe()
    server, _ = front_end_server(Settings(), host="127.0.0.1", port=port)
    probe.start()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, probe.reset)
    loop.add_signal_handler(signal.SIGUSR2, probe.take_census)
    serving = asyncio.create_task(server.serve())
    if cpython_gc:
        while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn has no event for it
            await asyncio.sleep(0.01)
        gc.unfreeze()
        gc.set_threshold(700, 10, 10)  # CPython's defaults
    try:
        await serving
    finally:
        await probe.stop()
    return probe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--cpython-gc", action="store_true")
    args = parser.parse_args()
    import uvloop

    from shared.settings import Settings
    from shared.telemetry.log import configure_logging

    configure_logging(Settings().log.level)  # as `ccfleet api` does
    # uvicorn raises the SIGTERM that stopped it again once it has drained: with the default
    # handler that would end the process before the report is written.
    signal.signal(signal.SIGTERM, lambda signum, frame: None)
    probe = uvloop.run(_serve_probed(args.port, args.cpython_gc))
    args.out.write_text(json.dumps(probe.report()))


if __name__ == "__main__":
    main()
