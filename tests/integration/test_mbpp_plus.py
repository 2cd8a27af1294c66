"""MBPP+ (EvalPlus's MbppPlus v0.2.0): the dataset as EvalPlus 0.3.1 reads it, its special
oracles, the MBPP prompts and whole-program extraction, and scoring both suites."""

from __future__ import annotations

import collections
import json
import math
from pathlib import Path

import pytest

from ray_jobs import score
from ray_jobs.config import EvalConfig, SandboxConfig, ScoreConfig, SweepConfig
from ray_jobs.generation.extract import extract_completion
from ray_jobs.generation.planning import RequestRow, request_body, response_completion
from ray_jobs.generation.preflight import resolve_sampling
from ray_jobs.sandbox.client import Sandbox
from ray_jobs.sandbox.codec import decode, encode
from ray_jobs.scoring.items import ScoreItem, score_items
from ray_jobs.scoring.verdict import outputs_match
from ray_jobs.sweep import expand
from ray_jobs.tasks.benchmarks import HUMANEVAL_CHAT_TEMPLATE as DEFAULT_CHAT_TEMPLATE
from ray_jobs.tasks.benchmarks import MBPP_CHAT_TEMPLATE, MBPP_COMPLETION_STOPS
from ray_jobs.tasks.datasets import load_dataset
from serve_app.model_info import ModelProfile

MBPP = load_dataset("mbpp_plus")


# ---- the dataset --------------------------------------------------------------------------------


def test_dataset_is_pinned_and_its_inputs_are_rebuilt_as_evalplus_rebuilds_them():
    assert len(MBPP.tasks) == 378 and MBPP.suites == ("base", "plus") and MBPP.benchmark.base_differential
    assert sum(len(t.base_inputs) for t in MBPP.tasks.values()) == 1174
    assert sum(len(t.plus_inputs) for t in MBPP.tasks.values()) == 39841
    assert MBPP.tasks["Mbpp/2"].base_inputs[0] == [(3, 4, 5, 6), (5, 7, 4, 10)]  # tuples, as the contract says
    assert MBPP.tasks["Mbpp/124"].base_inputs[0] == (0.0, 1j)
    assert type(MBPP.tasks["Mbpp/252"].base_inputs[0][0]) is complex
    assert MBPP.tasks["Mbpp/580"].base_inputs[0] == ((4, 5, (7, 6, (2, 4)), 6, 8),)  # tuples all the way down
    assert MBPP.tasks["Mbpp/793"].plus_inputs == []  # stored as {} in the file: no plus inputs
    task = MBPP.tasks["Mbpp/2"]
    assert task.prompt.startswith('"""\n') and "assert set(similar_elements(" in task.prompt
    assert task.benchmark.whole_program and "assert similar_elements" in task.test


# ---- EvalPlus's comparison, special oracles included (verdict.outputs_match) --------------------


def match(out, expected, args, entry_point, atol=0.0):
    return outputs_match(out, expected, args, entry_point, atol, "mbpp")


def test_set_equality_tasks_accept_any_order():
    assert match((5, 4), (4, 5), [(3, 4, 5, 6), (5, 7, 4, 10)], "similar_elements")
    assert match([4, 5, 5], (4, 5), [], "similar_elements")  # sets: duplicates and container type ignored
    assert not match((4,), (4, 5), [], "similar_elements")
    assert not match([[1]], [[1]], [], "Diff")  # unhashable items: set() raises, the input fails, as there
    assert not outputs_match((5, 4), (4, 5), [], "similar_elements", 0.0, "humaneval")  # MBPP only


def test_output_not_none_tasks_compare_only_whether_there_is_a_match():
    assert match(True, True, ["annie"], "check_str")  # a re.Match arrives as True (the sample maps it)
    assert match("any object", True, ["annie"], "check_str")
    assert not match(None, True, ["annie"], "check_str")
    assert not match(True, False, ["dawood"], "check_str")
    assert match(False, False, ["dawood"], "text_starta_endb")


def test_surface_area_digit_distance_sum_div_and_are_equivalent_oracles():
    # Mbpp/581: the canonical 2*b*s + b**2 reads s as the slant height; the pyramid's own height passes too
    assert match(33, 33, [3, 4], "surface_Area")
    assert match(round(9 + 4 * 3 * math.sqrt(1.5**2 + 16) / 2), 33, [3, 4], "surface_Area")
    assert not match(34, 33, [3, 4], "surface_Area")
    # Mbpp/558: the canonical zips 123 with 45 (6); the shorter number padded with zeros (045) passes too
    assert match(1 + 2 + 2, 6, [123, 45], "digit_distance_nums")
    assert match(6, 6, [123, 45], "digit_distance_nums") and not match(4, 6, [123, 45], "digit_distance_nums")
    assert match(0, 7, [10], "sum_div") and not match(1, 7, [10], "sum_div")  # Mbpp/295 (not in v0.2.0)
    assert match("anything", True, [36], "are_equivalent")  # Mbpp/164 (not in v0.2.0)


def test_float_tolerance_and_counters():
    assert match(4188.790204786391 + 1e-5, 4188.790204786391, [10], "volume_sphere", atol=1e-4)
    assert not match(4188.790204786391 + 1e-2, 4188.790204786391, [10], "volume_sphere", atol=1e-4)
    assert match(0.1 + 0.2, 0.3, [], "f") and not match(0.3001, 0.3, [], "f")  # 1e-6 for floats, atol 0
    assert not match([0.3], (0.3,), [], "f")  # the tolerance path needs the same type, as there
    expected = collections.Counter([10, 10, 20])
    assert match({10: 2, 20: 1}, expected, [], "freq_count")
    assert match(collections.Counter({10: 2, 20: 1, 30: 0}), expected, [], "freq_count")  # Counter == Counter
    assert not match({10: 2, 20: 1, 30: 0}, expected, [], "freq_count")  # dict == Counter is dict equality


def test_counters_and_other_dicts_cross_the_codec_only_for_mbpp_jobs():
    counter = collections.Counter("abca")
    back = decode(encode(counter, dict_subclasses=True))
    assert back == counter and type(back) is collections.Counter
    ordered = decode(encode(collections.OrderedDict(a=1), dict_subclasses=True))
    assert ordered == {"a": 1} and type(ordered) is dict
    assert type(decode(encode(collections.defaultdict(int, a=1), dict_subclasses=True))) is dict
    with pytest.raises(TypeError):
        encode(counter)  # HumanEval jobs: exact builtin types only, as before
    forged = type("Forged", (collections.Counter,), {"__eq__": lambda s, o: True})()
    with pytest.raises(TypeError):
        encode(forged, dict_subclasses=True)


# ---- prompts and extraction ---------------------------------------------------------------------

QWEN3 = ModelProfile(
    "Qwen/Qwen3-0.6B", Path("/nonexistent"), ("Qwen3ForCausalLM",), "qwen3", 40960, "max_position_embeddings"
)


def fitted(**extra) -> EvalConfig:
    unfitted = EvalConfig.model_validate({"output_dir": "/tmp/x", "dataset": "mbpp_plus", **extra})
    return unfitted.fitted_to(4096, resolve_sampling(unfitted, QWEN3)[0])


def test_chat_prompt_is_evalplus_instruction_with_the_example_assertion():
    task = MBPP.tasks["Mbpp/2"]
    cfg = fitted()
    assert cfg.prompt.template == MBPP_CHAT_TEMPLATE
    method, body = request_body(RequestRow("Mbpp/2", 0, 0, 1, 1), task, cfg)
    content = body["messages"][-1]["content"]
    assert method == "chat" and body["stop"] is None
    assert content.startswith(
        "Please provide a self-contained Python script that solves the following problem "
        'in a markdown code block:\n```\n"""\nWrite a function to find the shared elements'
    )
    assert "assert set(similar_elements((3, 4, 5, 6),(5, 7, 4, 10))) == set((4, 5))" in content
    # a template set on purpose stays; HumanEval keeps its own default
    assert fitted(prompt={"template": "T {prompt}"}).prompt.template == "T {prompt}"
    assert EvalConfig(output_dir="/tmp/x").prompt.template == DEFAULT_CHAT_TEMPLATE
    assert EvalConfig(output_dir="/tmp/x").prompt.model_fields_set == set()


def test_completion_mode_sends_the_docstring_with_evalplus_stops():
    task = MBPP.tasks["Mbpp/2"]
    cfg = fitted(prompt={"mode": "completion"}, sampling={"stop": ["\n@@"]})
    method, body = request_body(RequestRow("Mbpp/2", 0, 0, 1, 1), task, cfg)
    assert method == "completions" and body["prompt"] == task.prompt
    assert body["stop"] == [*MBPP_COMPLETION_STOPS, "\n@@"] and "\nassert" in body["stop"]
    continuation = (
        "def similar_elements(a, b):\n    return tuple(set(a) & set(b))\n\nprint(similar_elements((1,), (1,)))"
    )
    completion = response_completion(continuation, task, cfg)
    assert completion == "\ndef similar_elements(a, b):\n    return tuple(set(a) & set(b))\n"


RESPONSE = """<think>easy</think>
Here is the script:
```python
import math
from collections import Counter

SCALE = 1

def _common(a, b):
    return set(a) & set(b)

def similar_elements(test_tup1, test_tup2):
    return tuple(sorted(_common(test_tup1, test_tup2))) if SCALE else ()

def unused():
    return 0

print(similar_elements((3, 4, 5, 6), (5, 7, 4, 10)))
assert similar_elements((1, 2), (2, 3)) == (9,)
if __name__ == "__main__":
    similar_elements((1,), (1,))
```
"""


def test_whole_programs_keep_imports_helpers_and_entry_point_only():
    task = MBPP.tasks["Mbpp/2"]
    completion = extract_completion(RESPONSE, task.entry_point, program=True)
    assert completion == (
        "\nimport math\nfrom collections import Counter\nSCALE = 1\n"
        "def _common(a, b):\n    return set(a) & set(b)\n"
        "def similar_elements(test_tup1, test_tup2):\n"
        "    return tuple(sorted(_common(test_tup1, test_tup2))) if SCALE else ()\n"
    )
    namespace: dict = {}
    exec(task.prompt + completion, namespace)  # the failing example assert is gone, so it loads
    assert namespace["similar_elements"]((3, 4, 5, 6), (5, 7, 4, 10)) == (4, 5)
    assert extract_completion("```python\ndef f(:\n```", "f", program=True) == "\ndef f(:\n"  # kept: a syntax error
    assert extract_completion("<think>```python\ndef f(): pass", "f", program=True) == ""
    # HumanEval's extraction is unchanged: a body goes under the signature
    assert extract_completion("```python\nreturn 1\n```", "f") == "    return 1\n"


def test_sweep_matrix_takes_the_dataset_as_an_axis():
    sweep = SweepConfig(
        output_dir="/tmp/sweep",
        base={"limit": 2, "model": {"model": "/m"}},
        matrix={"dataset": ["humaneval_plus", "mbpp_plus"]},
    )
    configs = expand(sweep)
    assert [(m, name, cfg.dataset) for m, name, cfg in configs] == [
        (0, "dataset=humaneval_plus", "humaneval_plus"),
        (0, "dataset=mbpp_plus", "mbpp_plus"),
    ]
    assert [cfg.prompt.template for _, _, cfg in configs] == [DEFAULT_CHAT_TEMPLATE, MBPP_CHAT_TEMPLATE]


# ---- scoring in the sandbox ---------------------------------------------------------------------

WRAPPED = "{canonical}\n_reference = {ep}\ndef {ep}(*args):\n    out = _reference(*args)\n    return {expr}\n"
SPECIAL = [  # (task, a correct answer EvalPlus accepts though it differs from the canonical output, a wrong one)
    ("Mbpp/2", WRAPPED.replace("{expr}", "out[::-1]"), WRAPPED.replace("{expr}", "out[1:]")),
    ("Mbpp/769", WRAPPED.replace("{expr}", "out[::-1] + out[:1]"), WRAPPED.replace("{expr}", "out[1:]")),
    (
        "Mbpp/737",
        "\nimport re\ndef check_str(string):\n    return bool(re.match('[aeiouAEIOU]', string))\n",
        "\ndef check_str(string):\n    return 'no match'\n",
    ),
    (
        "Mbpp/88",
        "\ndef freq_count(items):\n    counts = {}\n    for x in items:\n        counts[x] = counts.get(x, 0) + 1\n"
        "    return counts\n",
        "\nfrom collections import defaultdict\ndef freq_count(items):\n    counts = defaultdict(int)\n"
        "    for x in items:\n        counts[x] += 2\n    return counts\n",
    ),
    (
        "Mbpp/581",
        "\nimport math\ndef surface_Area(b, h):\n    return round(b * b + 2 * b * math.sqrt((b / 2) ** 2 + h * h))\n",
        "\ndef surface_Area(b, h):\n    return b * b + 2 * b * h + 1\n",
    ),
    (
        "Mbpp/558",
        "\ndef digit_distance_nums(a, b):\n    x, y = str(a), str(b)\n    n = max(len(x), len(y))\n"
        "    return sum(abs(int(p) - int(q)) for p, q in zip(x.zfill(n), y.zfill(n)))\n",
        "\ndef digit_distance_nums(a, b):\n    return abs(a - b)\n",
    ),
    ("Mbpp/82", WRAPPED.replace("{expr}", "out * (1 + 1e-12)"), WRAPPED.replace("{expr}", "out * (1 + 1e-3)")),
]


def test_special_oracle_tasks_in_the_sandbox(mbpp_oracles):
    _, oracles = mbpp_oracles
    items = []
    for task_id, right, wrong in SPECIAL:
        task = MBPP.tasks[task_id]
        for i, template in enumerate((right, wrong)):
            completion = template.replace("{canonical}", task.canonical_solution).replace("{ep}", task.entry_point)
            items.append(ScoreItem(task_id, i, completion))
    config = SandboxConfig()
    with Sandbox(config) as sandbox:
        rows = score_items(items, MBPP.tasks, MBPP.suites, sandbox, config, oracles)
    verdicts = {(r["task_id"], r["completion_id"], r["suite"]): (r["status"], r["error_message"]) for r in rows}
    for task_id, _, _ in SPECIAL:
        for suite in MBPP.suites:
            assert verdicts[(task_id, 0, suite)][0] == "passed", (task_id, suite, verdicts[(task_id, 0, suite)])
            assert verdicts[(task_id, 1, suite)][0] == "failed", (task_id, suite, verdicts[(task_id, 1, suite)])


@pytest.mark.slow
def test_every_canonical_solution_passes_both_suites_and_a_wrong_answer_fails_them(tmp_path, ray_local, mbpp_oracles):
    """The issue's acceptance test: canonical + wrong per task, pass@1 0.5 and pass@2 1.0 on both
    MBPP (base inputs) and MBPP+ (base + plus inputs)."""
    cache_dir, _ = mbpp_oracles
    samples = tmp_path / "samples.jsonl"
    with samples.open("w") as fh:
        for task in MBPP.tasks.values():
            for completion in (task.canonical_solution, f"\ndef {task.entry_point}(*args):\n    return None\n"):
                fh.write(json.dumps({"task_id": task.task_id, "completion": completion}) + "\n")
    cfg = ScoreConfig(
        samples=samples, output_dir=tmp_path / "out", dataset="mbpp_plus", k=[1, 2], workers=2, cache_dir=cache_dir
    )
    summary = score.run(cfg, progress=False).model_dump(mode="json")
    assert summary["pass_at_k"] == {"base": {"pass@1": 0.5, "pass@2": 1.0}, "plus": {"pass@1": 0.5, "pass@2": 1.0}}
    for suite in ("base", "plus"):
        assert summary["status_counts"][suite]["passed"] == summary["status_counts"][suite]["failed"] == 378
    assert summary["samples"] == 756 and summary["suites"] == ["base", "plus"]
