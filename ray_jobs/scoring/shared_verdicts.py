"""Verdicts of distinct programs, shared between scoring shards: of one run (identical programs in
different shards, e.g. in different generation shards of `evaluate`), and of the configurations
of a sweep that score the same dataset in the same sandbox (a program written again at another
temperature, or with thinking on and off, runs once).

Safe where a verdict is a function of the program text, the task, the dataset and the sandbox's
limits: a SharedVerdicts is only ever shared by pools that agree on the last three (the sweep
keys them so), and only with `dedupe` on, which already assumes the first (docs/outputs.md)."""

from __future__ import annotations

import threading

from ray_jobs.scoring.items import ScoreItem, program_key


class SharedVerdicts:
    """Thread-safe: the pools of a sweep's configurations run in threads of one driver."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: dict[ScoreItem, dict[str, dict]] = {}  # program -> suite -> the row of its run

    def record(self, items: list[ScoreItem], rows: list[dict]) -> None:
        """Remember the rows of samples that ran (not reused, not crashed: a scorer's failure is
        no verdict of the program)."""
        by_id = {(item.task_id, item.completion_id): item for item in items}
        with self._lock:
            for row in rows:
                if row["reused_from"] is None and row["status"] != "crashed":
                    key = program_key(by_id[(row["task_id"], row["completion_id"])])
                    self._rows.setdefault(key, {})[row["suite"]] = row

    def reuse(self, items: list[ScoreItem], suites: tuple[str, ...]) -> tuple[list[dict], list[ScoreItem]]:
        """(rows for the items whose program has a verdict in every suite, the items still to run)."""
        rows, todo = [], []
        with self._lock:
            for item in items:
                known = self._rows.get(program_key(item), {})
                if all(suite in known for suite in suites):
                    rows += [_reused(known[suite], item) for suite in suites]
                else:
                    todo.append(item)
        return rows, todo


def _reused(row: dict, item: ScoreItem) -> dict:
    """The verdict of the run that `row` records, given to `item`: no process of its own ran."""
    return {
        **row,
        "completion_id": item.completion_id,
        "reused_from": row["completion_id"],
        "reused_config": row["config_id"],
        "duration_s": 0.0,
        "cpu_s": None,
        "effective_s": None,
    }
