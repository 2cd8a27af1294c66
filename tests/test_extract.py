from ray_jobs.generation.extract import code_blocks, extract_completion, strip_thinking

PROMPT = 'from typing import List\n\n\ndef add(a: int, b: int) -> int:\n    """Add."""\n'


def program(response: str) -> str:
    return PROMPT + extract_completion(response, "add")


def run(response: str):
    namespace = {}
    exec(program(response), namespace)
    return namespace["add"](2, 3)


def test_full_def_in_markdown_after_thinking():
    response = ("<think>\nThe user wants addition. ```python\nwrong()\n```\n</think>\n\nHere it is:\n\n"
                "```python\nimport math\n\ndef add(a: int, b: int) -> int:\n    return a + b\n```\n\nDone.")
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
