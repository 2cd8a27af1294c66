"""Explicit pyarrow schemas of every Parquet dataset this project writes (docs/outputs.md)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from ray_jobs.storage import atomic

# The status taxonomy of a results row: scoring/verdict.py decides exactly one per sample (docs/outputs.md)
STATUSES = ("passed", "failed", "error", "syntax_error", "timeout", "out_of_memory", "crashed", "empty")

RESULTS = pa.schema(
    [
        pa.field("task_id", pa.string(), nullable=False),
        pa.field("completion_id", pa.int64(), nullable=False),
        pa.field("suite", pa.string(), nullable=False),  # "base" | "plus"
        pa.field("passed", pa.bool_(), nullable=False),
        pa.field("status", pa.string(), nullable=False),  # STATUSES
        pa.field("error_type", pa.string()),
        pa.field("error_message", pa.string()),
        pa.field("duration_s", pa.float64(), nullable=False),  # wall time of the sample's process
        pa.field("config_id", pa.string(), nullable=False),
        # passed rows only: time spent in the tests, and the canonical solution's on the same inputs
        pa.field("runtime_s", pa.float64()),
        pa.field("canonical_runtime_s", pa.float64()),
        # v3: the sample's CPU time, its load-independent time (wall minus waiting for a CPU: what
        # the limit is compared to), and the largest share of a time limit one test used
        pa.field("cpu_s", pa.float64()),
        pa.field("effective_s", pa.float64()),
        pa.field("limit_share", pa.float64()),
        # v4: the completion_id of an identical program of the same task whose run gave this row its
        # verdict (each distinct program runs once); null where the sample ran itself (or in v3 files)
        pa.field("reused_from", pa.int64()),
        # v4: differential suites, not passed: the first input whose output did not match
        pa.field("failed_input", pa.int64()),
        # v5: with reused_from, the config_id of the run that ran that program (this run's own, or
        # another configuration's of the same sweep)
        pa.field("reused_config", pa.string()),
    ],
    metadata={"ray_humaneval.dataset": "results", "ray_humaneval.schema_version": "5"},
)

GENERATIONS = pa.schema(
    [
        pa.field("task_id", pa.string(), nullable=False),
        pa.field("completion_id", pa.int64(), nullable=False),
        pa.field("config_id", pa.string(), nullable=False),
        pa.field("response", pa.string(), nullable=False),  # raw model text
        pa.field("completion", pa.string(), nullable=False),  # extracted code, appended to the prompt
        pa.field("finish_reason", pa.string()),  # "stop" | "length" | "error"
        pa.field("prompt_tokens", pa.int64()),
        pa.field("completion_tokens", pa.int64()),
        pa.field("latency_s", pa.float64()),
        pa.field("replica", pa.string()),  # which Serve replica answered
        pa.field("error", pa.string()),  # generation error (engine error, timeout), else null
        pa.field("request_started_at", pa.float64()),  # unix time the request was sent (v2; null in v1 files)
        # where the completion was found in the response: fence | tag | text | none (v3; null before)
        pa.field("extracted_from", pa.string()),
    ],
    metadata={"ray_humaneval.dataset": "generations", "ray_humaneval.schema_version": "3"},
)


def write_table(rows: list[dict], schema: pa.Schema, target: Path) -> None:
    """Validate rows against the schema and write atomically (temp file, then rename)."""
    table = pa.Table.from_pylist(rows, schema=schema)
    # the sink is ours to close: given a path, pyarrow leaves the file open on a failed write
    # until a garbage collection frees its traceback, and a full disk kept the space (and the
    # mount) busy after the temp file was deleted
    with atomic.atomic_path(target) as tmp, pa.OSFile(str(tmp), mode="wb") as sink:
        pq.write_table(table, sink)


def _conform(table: pa.Table, schema: pa.Schema, path: Path) -> pa.Table:
    """Files from an older schema version lack the newer nullable columns: add them as nulls."""
    columns = []
    for field in schema:
        if field.name in table.column_names:
            columns.append(table.column(field.name).cast(field.type))
        elif field.nullable:
            columns.append(pa.nulls(table.num_rows, field.type))
        else:
            raise ValueError(f"{path}: required column {field.name!r} is missing")
    return pa.Table.from_arrays(columns, schema=schema)


def read_tables(paths: list[Path], schema: pa.Schema) -> pa.Table:
    if not paths:
        return schema.empty_table()
    return pa.concat_tables([_conform(pq.read_table(p), schema, p) for p in paths])
