"""Calls that share round trips: those made while one batch is in flight go together in the next.

Alone, a call runs at once in a batch of one, as a plain call would; a thousand made in the
same moment (a thousand requests' relays asking whether the fleet can serve them, say) cost a
few round trips instead of a thousand. Calls that come spread out (a thousand streams' quiet
checks, each a second after its stream's last chunk) share a batch only if the batch waits
for them: with `gather_s`, each batch opens that long before it is sent.

`run` takes the batch's items, in order, and returns one result per item; an exception it
raises is every caller's in that batch. A caller cancelled while its batch is in flight
leaves the others' items to the next caller, who runs them again: `run` must be safe to
repeat (a read, or writes that are idempotent).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass
class _Call(Generic[Item, Result]):
    item: Item
    done: bool = False
    result: Result | None = None
    error: Exception | None = None


class CoalescedCalls(Generic[Item, Result]):
    def __init__(
        self, run: Callable[[Sequence[Item]], Awaitable[Sequence[Result]]], *, gather_s: float = 0
    ) -> None:
        self._run = run
        self._gather_s = gather_s
        self._pending: list[_Call[Item, Result]] = []
        self._in_flight = asyncio.Lock()  # fair: callers take their turn in arrival order

    async def __call__(self, item: Item) -> Result:
        call: _Call[Item, Result] = _Call(item)
        self._pending.append(call)
        try:
            async with self._in_flight:  # the batch that took this call has ended by then
                if not call.done:
                    await self._run_batch(call)
        except asyncio.CancelledError:
            if call in self._pending:  # nobody needs it run any more
                self._pending.remove(call)
            raise
        if call.error is not None:
            raise call.error
        return call.result  # type: ignore[return-value]  # set with done, Result may be None

    async def _run_batch(self, own: _Call[Item, Result]) -> None:
        if self._gather_s > 0:
            await asyncio.sleep(self._gather_s)  # the calls made meanwhile join this batch
        batch, self._pending = self._pending, []
        try:
            results = await self._run([call.item for call in batch])
        except asyncio.CancelledError:
            # This caller is gone; the others' items go to whoever runs the next batch.
            self._pending[:0] = [call for call in batch if call is not own]
            raise
        except Exception as exc:
            for call in batch:
                call.done, call.error = True, exc
            return
        for call, result in zip(batch, results, strict=True):
            call.done, call.result = True, result
