"""One batcher for every request: segments of uploads, batch items, live finals and partials.

Items wait by priority (live finals, then partials, then uploads), first come first served
within one. A batch starts with the most urgent item and is filled, most urgent first, while
it stays within `max_items` and `max_seconds` of padded audio (the longest item times the
count: what the model computes). With room left it may wait `wait_s` for more to arrive.
On a CPU batching buys nothing (measured), so there `max_items` is 1 and nothing waits; on a
GPU it is where the throughput is. Items of cancelled jobs are dropped as they come up.
"""

from __future__ import annotations

import threading
from collections import deque

from sensevoice_server.engine.jobs import Priority, WorkItem


class Batcher:
    def __init__(self, *, max_items: int, max_seconds: float, wait_s: float = 0.0) -> None:
        self.max_items = max(1, max_items)
        self.max_seconds = max_seconds
        self.wait_s = wait_s
        self._queues: dict[Priority, deque[WorkItem]] = {p: deque() for p in Priority}
        self._ready = threading.Condition()
        self._closed = False
        self._failure: Exception | None = None

    def put(self, items: list[WorkItem]) -> None:
        """Add one job's items, in time order. As many waiting model threads are woken as
        there are items: with two, an upload's segments are decoded two at a time."""
        with self._ready:
            if self._failure is not None:
                for item in items:
                    item.job.fail(self._failure)
                return
            for item in items:
                self._queues[item.job.priority].append(item)
            self._ready.notify(len(items))

    def close(self) -> None:
        """No more items: `next_batch` returns what is left, then None."""
        with self._ready:
            self._closed = True
            self._ready.notify_all()

    def fail_all(self, error: Exception) -> None:
        """Fail the jobs of what waits, and of whatever comes later, with `error`; every
        model thread's `next_batch` returns None."""
        with self._ready:
            self._failure, self._closed = error, True
            for queue in self._queues.values():
                for item in queue:
                    item.job.fail(error)
                queue.clear()
            self._ready.notify_all()

    def next_batch(self) -> list[WorkItem] | None:
        """The next batch to run (blocks until there is one); None once closed and empty."""
        with self._ready:
            first = self._pop_first()
            while first is None:
                if self._closed:
                    return None
                self._ready.wait()
                first = self._pop_first()
            batch = [first]
            if self.max_items > 1 and self.wait_s > 0 and self._count() < self.max_items - 1:
                self._ready.wait(self.wait_s)  # a short wait for batch mates
            self._fill(batch)
            return batch

    def _pop_first(self) -> WorkItem | None:
        for priority in Priority:
            queue = self._queues[priority]
            while queue:
                item = queue.popleft()
                if not item.job.cancelled:
                    return item
        return None

    def _fill(self, batch: list[WorkItem]) -> None:
        longest = max(item.seconds for item in batch)
        for priority in Priority:
            queue = self._queues[priority]
            while queue and len(batch) < self.max_items:
                item = queue[0]
                if item.job.cancelled:
                    queue.popleft()
                    continue
                candidate = max(longest, item.seconds)
                if candidate * (len(batch) + 1) > self.max_seconds:
                    return
                batch.append(queue.popleft())
                longest = candidate

    def _count(self) -> int:
        return sum(len(queue) for queue in self._queues.values())
