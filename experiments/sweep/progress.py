"""Where a sweep stands: points done / running / left, and an ETA from measured point times.

Read from the coordination study (every worker's trials), so it counts the work of all workers,
including points finished by an earlier, interrupted run of the same sweep.
"""

from __future__ import annotations

import statistics
import threading
from dataclasses import dataclass

from optuna.trial import TrialState

from .worker import point_of


@dataclass
class Counts:
    done: int
    running: int
    left: int
    total: int
    eta_s: float | None  # None until a point has finished here (no measured time yet)


def count_points(study, point_ids: list[str], workers: int) -> Counts:
    """A point is done once a trial of it completed, running while a trial of it runs."""
    done: set[str] = set()
    running: set[str] = set()
    seconds: list[float] = []
    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.RUNNING)):
        pid = point_of(t)
        if pid is None:
            continue
        if t.state == TrialState.RUNNING:
            running.add(pid)
        else:
            done.add(pid)
            if t.datetime_start and t.datetime_complete:
                seconds.append((t.datetime_complete - t.datetime_start).total_seconds())
    ids = set(point_ids)
    done &= ids
    running = (running & ids) - done
    left = len(ids) - len(done) - len(running)
    # the median: trials of points that were already in MLflow end at once and would drag a mean down
    eta = statistics.median(seconds) * (left + len(running)) / max(workers, 1) if seconds else None
    return Counts(len(done), len(running), left, len(ids), eta)


class ProgressWatcher:
    """Calls `show(counts)` every `interval` seconds in a background thread when the counts change,
    and once more at `stop()`."""

    def __init__(self, study, point_ids: list[str], workers: int, show, interval: float = 5.0):
        self.study, self.ids, self.workers, self.show, self.interval = study, point_ids, workers, show, interval
        self._stop = threading.Event()
        self._last: tuple | None = None
        self._thread = threading.Thread(target=self._run, daemon=True, name="sweep-progress")

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._poll(force=True)

    def _poll(self, force: bool = False) -> None:
        try:
            c = count_points(self.study, self.ids, self.workers)
        except Exception:  # a busy or briefly unreachable storage: try again at the next tick
            return
        key = (c.done, c.running, c.left)
        if force or key != self._last:
            self._last = key
            self.show(c)

    def _run(self) -> None:
        self._poll()  # where a resumed sweep starts
        while not self._stop.wait(self.interval):
            self._poll()
