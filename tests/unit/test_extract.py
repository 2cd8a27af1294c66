import contextlib
import random
import re
import signal
import textwrap
import time

import pytest

from ray_jobs.generation.extract import (
    Extraction,
    as_completion,
    code_blocks,
    dedent,
    extract,
    extract_completion,
    fenced_blocks,
    program_completion,
    strip_thinking,
)
from tests.support.model_responses import CASES, passes, task

PROMPT = 'from typing import List\n\n\ndef add(a: int, b: int) -> int:\n    """Add."""\n'


def program(response: str) -> str:
    return PROMPT + extract_completion(response, "add")


def run(response: str):
    namespace = {}
    exec(program(response), namespace)
    return namespace["add"](2, 3)


def test_full_def_in_markdown_after_thinking():
    response = (
        "<think>\nThe user wants addition. ```python\nwrong()\n```\n</think>\n\nHere it is:\n\n"
        "```python\nimport math\n\ndef add(a: int, b: int) -> int:\n    return a + b\n```\n\nDone."
    )
    assert run(response) == 5


def test_unterminated_think_block_leaves_nothing():
    assert extract_completion("<think>\nlet me see... ```python\ndef add(a, b): return 1", "add") == ""


def test_lone_closing_think_tag_keeps_the_answer():
    assert run("reasoning here\n</think>\n```python\ndef add(a, b):\n    return a + b\n```") == 5


def test_body_only_answers_are_indented_under_the_signature():
    assert run("```python\nreturn a + b\n```") == 5
    assert run("    return a + b\n") == 5


def test_first_block_by_default_last_on_request():
    response = "```python\ndef add(a, b):\n    return a + b\n```\ntest:\n```python\ndef add(a, b):\n    return 0\n```"
    assert run(response) == 5
    namespace = {}
    exec(PROMPT + extract_completion(response, "add", block="last"), namespace)
    assert namespace["add"](2, 3) == 0


def test_non_python_blocks_are_skipped_and_unterminated_fence_runs_to_end():
    assert code_blocks("```bash\npip install x\n```\n```python\nx = 1\n```") == ["x = 1\n"]
    assert run("```python\ndef add(a, b):\n    return a + b\n") == 5


def test_plain_text_without_fences_is_used_raw():
    assert run("def add(a, b):\n    return a + b\n") == 5
    assert strip_thinking("<think></think>\n\nabc") == "\n\nabc"


# ---- linear time on hostile responses (issue 21) -------------------------------------------------

MB = 1 << 20


def _fill(unit: str) -> str:
    return unit * (MB // len(unit))


# Each took the seed's extraction from seconds to minutes (quadratic regexes) at 1 MB.
HOSTILE = {
    "repeated_think": _fill("<think>"),
    "repeated_fences_on_one_line": _fill("```"),
    "fence_then_a_long_line": "```python" + _fill("x"),
    "repeated_fence_lines": _fill("```\n"),
    "repeated_answer_tags": _fill("<answer>"),
    "many_answer_blocks": _fill("<answer>def add(a, b): return 1</answer>"),
    "newlines": _fill("\n"),
    "blank_lines_of_spaces": _fill(" \n"),
    "one_deep_indentation": _fill("    ") + "x",
    "definition_lines": _fill("def add(\n"),
    "prose_and_broken_code": _fill("Then:\ndef add(:\n"),
    "decorators": _fill("@a\n"),
    "valid_code": _fill("x = 1\n"),
    "nested_unary_minus": _fill("-") + "1",  # ast.parse: MemoryError
}


@contextlib.contextmanager
def at_most(seconds: float):
    """Fail (rather than hang for minutes) when the block runs longer than `seconds`."""

    def expire(*_):
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.mark.parametrize("rules", ["auto", "seed"])
@pytest.mark.parametrize("name", HOSTILE)
def test_a_hostile_megabyte_is_read_in_under_a_second(name, rules):
    for program in (False, True):
        started = time.thread_time()  # the work itself, not the machine's load (~0.25 s here)
        with at_most(5.0):
            extract(HOSTILE[name], "add", program=program, rules=rules)
        assert time.thread_time() - started < 1.0, (name, program)


# ---- the seed's rules, now linear, read as before ------------------------------------------------

SEED_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
SEED_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)


def seed_strip_thinking(text: str) -> str:
    text = SEED_THINK_BLOCK.sub("", text)
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    if "<think>" in text:
        text = text.split("<think>", 1)[0]
    return text


def test_scanning_equals_the_seed_regexes_on_random_text():
    pieces = [
        "<think>",
        "</think>",
        "```",
        "```python",
        "``` Py3 x",
        "```bash",
        "\n",
        " ",
        "\t",
        "x",
        "def add(a, b):",
        "<answer>",
        "`",
    ]
    rng = random.Random(24)
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 14)))
        assert strip_thinking(text) == seed_strip_thinking(text), repr(text)
        expected = [(language.lower(), body) for language, body in SEED_FENCE.findall(text)]
        assert fenced_blocks(text) == expected, repr(text)


def test_dedent_equals_textwrap():
    pieces = ["    ", "\t", " ", "x", "\n", "  \n", "\r", "def f():\n", "        y\n"]
    rng = random.Random(21)
    for _ in range(5000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert dedent(text) == textwrap.dedent(text), repr(text)


# ---- what models write (issue 24) ----------------------------------------------------------------


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_auto_extraction_finds_what_models_write(case):
    t = task(case.task_id)
    program = t.benchmark.whole_program
    auto = extract(case.response, t.entry_point, program=program)
    seed = extract(case.response, t.entry_point, program=program, rules="seed")
    assert auto.found == case.found
    assert passes(t, auto.code) is case.passes, auto.code
    assert passes(t, seed.code) is case.seed_passes, seed.code
    assert case.passes >= case.seed_passes  # never worse than the seed
    assert (auto.code == "") is (auto.found == "none")


def seed_extract_completion(response: str, entry_point: str, block: str, program: bool) -> str:
    """The seed's extract_completion, with its regexes."""
    text = seed_strip_thinking(response)
    blocks = [(language.lower(), body) for language, body in SEED_FENCE.findall(text)]
    python = [body for language, body in blocks if language in ("", "python", "py", "python3")]
    blocks = python or [body for _, body in blocks]
    if blocks:
        text = blocks[0] if block == "first" else blocks[-1]
    return program_completion(text, entry_point) if program else as_completion(text, entry_point)


def test_seed_rules_are_the_seeds_on_every_case():
    for case in CASES:
        t = task(case.task_id)
        program = t.benchmark.whole_program
        for block in ("first", "last"):
            assert extract(case.response, t.entry_point, block, program, rules="seed").code == seed_extract_completion(
                case.response, t.entry_point, block, program
            ), case.name


def test_nothing_found_is_its_own_outcome():
    assert extract("<think>\nstill thinking", "add") == Extraction("", "none")
    assert extract("I cannot answer that.", "add") == Extraction("", "none")
    assert extract("```python\n\n```", "add").found == "none"
    # code with a syntax error is wrong code, not nothing: it runs and the sandbox says so
    assert extract("Fixed:\nfor x in range(3)\n    return x", "add").found == "text"


def test_the_entry_point_block_wins_in_either_order():
    response = "```python\nprint(add(1, 2))\n```\n```python\ndef add(a, b):\n    return a + b\n```"
    assert run(response) == 5
    last = "```python\ndef add(a, b):\n    return a + b\n```\n```python\nprint(add(1, 2))\n```"
    namespace: dict = {}
    exec(PROMPT + extract_completion(last, "add", block="last"), namespace)
    assert namespace["add"](2, 3) == 5


def test_restated_function_keeps_its_decorators_and_drops_example_calls():
    response = (
        "```python\nimport functools\n\n@functools.lru_cache(maxsize=None)\ndef add(a, b):\n    return a + b\n\n"
        "assert add(1, 1) == 3\nprint(add(2, 2))\nadd(0, 0)\nif __name__ == '__main__':\n    add(input(), 1)\n```"
    )
    completion = extract_completion(response, "add")
    assert completion == "\nimport functools\n\n@functools.lru_cache(maxsize=None)\ndef add(a, b):\n    return a + b\n"
    assert extract_completion(response, "add", rules="seed").count("assert") == 1  # the seed keeps them
