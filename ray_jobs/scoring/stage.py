"""The scoring leg of both entry points, written once: the canonical outputs the differential
suites compare with, the canonical runtimes kept from earlier runs, content-keyed shards, and the
pool of sandboxed workers. `evaluate` submits each generation shard's samples as the shard lands;
`score` submits all of them at once."""

from __future__ import annotations

from pathlib import Path

from ray_jobs.config import SandboxConfig
from ray_jobs.scoring import canonical_runtimes
from ray_jobs.scoring.items import ScoreItem
from ray_jobs.scoring.pool import ScoringPool, ScoringRun
from ray_jobs.scoring.shards import make_shards
from ray_jobs.scoring.shared_verdicts import SharedVerdicts
from ray_jobs.tasks.datasets import Dataset


class ScoringStage:
    """Use as a context manager (inside a Ray session): `submit` items, then `close()` for the
    ScoringRun. `config_id` goes on every verdict; `shard_salt` (what determines the verdicts)
    keys the shards, so a rerun with the same salt resumes. `shared`: verdicts of the other
    configurations of a sweep on the same dataset and sandbox (with `dedupe`)."""

    def __init__(
        self,
        dataset: Dataset,
        results_dir: Path,
        sandbox: SandboxConfig,
        *,
        workers: int | None,
        shard_size: int,
        dedupe: bool,
        config_id: str,
        shard_salt: str,
        cache_dir: Path,
        expected_samples: int,
        progress: bool = True,
        bar_line: int = 0,
        shared: SharedVerdicts | None = None,
    ):
        from ray_jobs.ray_runtime import cluster_cpus
        from ray_jobs.tasks.groundtruth import load_oracles

        self.shard_size, self.dedupe, self.shard_salt = shard_size, dedupe, shard_salt
        oracles = load_oracles(dataset.name, cache_dir) if dataset.differential else None
        self._runtimes_file = canonical_runtimes.cache_file(cache_dir, dataset, sandbox)
        self._pool = ScoringPool(
            results_dir,
            dataset.name,
            dataset.suites,
            sandbox,
            oracles,
            workers or cluster_cpus(),
            config_id,
            expected_samples,
            progress,
            dedupe=dedupe,
            bar_line=bar_line,
            shared=shared,
            runtimes=canonical_runtimes.load(self._runtimes_file),
        )

    def __enter__(self) -> ScoringStage:
        self._pool.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        self._pool.__exit__(*exc)

    def submit(self, items: list[ScoreItem]) -> None:
        self._pool.submit(make_shards(items, self.shard_size, self.shard_salt, self.dedupe))

    def close(self) -> ScoringRun:
        run = self._pool.close()
        canonical_runtimes.save(self._runtimes_file, self._pool.runtimes)
        return run
