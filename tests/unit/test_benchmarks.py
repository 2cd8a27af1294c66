"""The benchmark spec (tasks/benchmarks.py) is the one place that knows a dataset: each entry loads,
names every suite, and its tasks point back at it."""

import pytest

from ray_jobs.config import EvalConfig
from ray_jobs.tasks.benchmarks import BENCHMARKS, DATASETS, EVALPLUS_SCORES
from ray_jobs.tasks.datasets import load_dataset


@pytest.mark.parametrize("name", DATASETS)
def test_every_benchmark_loads_and_names_its_suites(name):
    spec = BENCHMARKS[name]
    dataset = load_dataset(name)
    assert dataset.benchmark is spec and dataset.suites == spec.suites
    assert len(spec.suite_names) == len(spec.suites) and spec.final_suite == spec.suites[-1]
    assert all(task.benchmark is spec for task in dataset.tasks.values())
    assert all(task.test for task in dataset.tasks.values())  # borrowed where the file has none
    assert EvalConfig(output_dir="/tmp/x", dataset=name).prompt.template == spec.chat_template
    # a differential suite needs inputs to compare on
    if spec.differential:
        assert sum(len(t.base_inputs) + len(t.plus_inputs) for t in dataset.tasks.values()) > 0


def test_scoring_rules_follow_evalplus():
    he, mbpp = BENCHMARKS["humaneval_plus"], BENCHMARKS["mbpp_plus"]
    assert not he.is_differential("base") and he.is_differential("plus")
    assert mbpp.is_differential("base") and mbpp.whole_program and not he.whole_program
    assert not BENCHMARKS["humaneval"].differential
    assert [name for name, _, _ in EVALPLUS_SCORES] == ["HumanEval", "HumanEval+", "MBPP", "MBPP+"]
