"""Chat response -> the code that is appended to the task prompt, and where it was found.

Two rule sets (``prompt.extraction``; ``score --extraction``):

``seed`` (the first releases' rules, kept exactly for users who must reproduce them):

1. Drop Qwen3 thinking: ``<think>...</think>``; an unterminated block (the model ran out of tokens
   while thinking) leaves nothing, and a lone ``</think>`` (template pre-filled the opening tag)
   keeps only what follows it.
2. Take a fenced code block, the first by default as OpenCompass's humaneval_postprocess_v2 does
   (``last`` as an option); blocks tagged with another language are used only when no block is
   tagged Python (or untagged); an unterminated fence runs to the end of the text.
3. Otherwise use the raw text.

``auto`` (the default) reads what models write, with EvalPlus's sanitizer as its anchor
(evalplus/sanitize.py, 0.3.1):

1. Thinking is dropped as above, so an answer that is all thinking finds nothing.
2. Candidates are the fenced blocks (as above) or, where there is none, the contents of answer
   tags: ``<answer>``, ``<solution>``, ``<code>`` (DeepSeek-R1 style ``<think>...</think>
   <answer>...</answer>``; an unclosed tag runs to the end).
3. Of several candidates, the first (``last``: the last) that defines the entry point wins, and
   candidates before it that hold only imports are put in front of it; where none defines it,
   the seed's choice stands.
4. Undelimited text (the whole answer, or a tag's content) is used whole when it parses as Python;
   otherwise its code is found line by line: a run of lines from a ``def``/``class``/
   ``import``/decorator line, indented or not, up to the first line of prose at its indentation
   (the run that defines the entry point wins, then one that parses). Text with no line that
   looks like code finds nothing.
5. HumanEval: a restated function drops its example asserts and its top-level ``print(...)``,
   ``input(...)`` and entry-point calls (they would run, or fail, when the program loads).

Where the code was found is reported as ``fence``, ``tag``, ``text`` (undelimited text) or
``none`` (no code: the sample is scored ``empty``, not run).

Both rule sets then make the code fit the prompt:

- HumanEval: if the code defines the entry point itself (a full ``def`` restating the signature,
  maybe with imports and decorators), it is appended after the prompt and redefines the function;
  otherwise it is the function body and is indented under the prompt's signature when it is not
  already.
- MBPP (``program=True``): the prompt is a docstring, so the code is a whole program, kept as
  EvalPlus's sanitizer keeps it: its imports, and the functions, classes and top-level assignments
  that the entry point reaches by name (helpers included), in their order; example calls, prints,
  asserts and ``__main__`` blocks are dropped. Code that does not parse is kept as it is: the
  sandbox reports its syntax error.

Every pass is linear in the response's size: the scanning uses ``str.find`` and anchored regexes
that cannot backtrack across lines, and code is parsed only up to PARSE_LIMIT characters (larger
code is kept as it is), so a hostile 1 MB response is read in well under a second.
"""

from __future__ import annotations

import ast
import os
import re
import textwrap
from dataclasses import dataclass
from typing import Literal

BlockChoice = Literal["first", "last"]
Rules = Literal["auto", "seed"]
Found = Literal["fence", "tag", "text", "none"]
FOUND: tuple[Found, ...] = ("fence", "tag", "text", "none")

# ast.parse costs about 2 us a character and is the one superlinear-in-practice step (memory for
# the tree); honest answers are a few kB, so code beyond this is taken as it is, unparsed.
PARSE_LIMIT = 32_000
# Undelimited text is cut into at most this many runs of code lines; honest answers have a few.
MAX_SEGMENTS = 64

THINK_OPEN, THINK_CLOSE = "<think>", "</think>"
FENCE = "```"
ANSWER_TAGS = ("answer", "solution", "code")
PYTHON_TAGS = ("", "python", "py", "python3")


@dataclass(frozen=True)
class Extraction:
    code: str  # what is appended to the task's prompt
    found: Found  # where it was found


def thinking_part(response: str) -> str:
    """The reasoning a response opens with: up to ``</think>`` (the template may pre-fill the
    opening tag), or all of it where ``<think>`` never closed; "" without thinking."""
    if THINK_CLOSE in response:
        return response.split(THINK_CLOSE, 1)[0]
    return response if THINK_OPEN in response else ""


def strip_thinking(text: str) -> str:
    """The answer without its thinking (rule 1). Closed blocks are cut out left to right; once a
    ``<think>`` has no ``</think>`` after it, no later one has either, so the scan stops there."""
    kept, start = [], 0
    while (opened := text.find(THINK_OPEN, start)) != -1:
        closed = text.find(THINK_CLOSE, opened + len(THINK_OPEN))
        if closed == -1:
            break
        kept.append(text[start:opened])
        start = closed + len(THINK_CLOSE)
    kept.append(text[start:])
    text = "".join(kept)
    if THINK_CLOSE in text:
        text = text.rsplit(THINK_CLOSE, 1)[1]
    if THINK_OPEN in text:
        text = text.split(THINK_OPEN, 1)[0]
    return text


_LANGUAGE = re.compile(r"[ \t]*([A-Za-z0-9_+-]*)")


def fenced_blocks(text: str) -> list[tuple[str, str]]:
    """(language tag, body) of each fenced block, left to right. A fence opens at ``` followed by
    a newline on its line (the tag is the word right after the backticks) and closes at the next
    ```, or the end of the text."""
    blocks, start = [], 0
    while (opened := text.find(FENCE, start)) != -1:
        line_end = text.find("\n", opened + len(FENCE))
        if line_end == -1:  # no newline after this fence, so none after any later one either
            break
        language = _LANGUAGE.match(text, opened + len(FENCE), line_end).group(1)
        closed = text.find(FENCE, line_end + 1)
        body_end = len(text) if closed == -1 else closed
        blocks.append((language.lower(), text[line_end + 1 : body_end]))
        start = body_end + len(FENCE)
    return blocks


def code_blocks(text: str) -> list[str]:
    """Fenced blocks; blocks tagged with a non-Python language are ignored when Python ones exist."""
    blocks = fenced_blocks(text)
    python = [body for language, body in blocks if language in PYTHON_TAGS]
    return python or [body for _, body in blocks]


def tagged_blocks(text: str) -> list[str]:
    """Contents of the answer tags, left to right; an unclosed tag runs to the end of the text."""
    blocks = []
    for tag in ANSWER_TAGS:
        opening, closing = f"<{tag}>", f"</{tag}>"
        start = 0
        while (opened := text.find(opening, start)) != -1:
            body_start = opened + len(opening)
            closed = text.find(closing, body_start)
            body_end = len(text) if closed == -1 else closed
            blocks.append((opened, text[body_start:body_end]))
            start = body_end + len(closing)
    return [body for _, body in sorted(blocks, key=lambda b: b[0])]


_WHITESPACE_ONLY = re.compile(r"^[ \t]+$", re.MULTILINE)
_INDENTATION = re.compile(r"(^[ \t]*)(?:[^ \t\n])", re.MULTILINE)


def dedent(text: str) -> str:
    """textwrap.dedent in linear time (it compiles the common indentation into a regex, which takes
    quadratic time in a long one): blank lines emptied, the indentation that all other lines share
    removed."""
    text = _WHITESPACE_ONLY.sub("", text)
    margin = os.path.commonprefix(_INDENTATION.findall(text))
    if not margin:
        return text
    return "\n".join(line[len(margin) :] if line.startswith(margin) else line for line in text.split("\n"))


def _definition(entry_point: str) -> re.Pattern:
    # anchored at a line start and confined to that line: no backtracking across lines
    return re.compile(rf"^[^\S\n]*(?:async[ \t]+)?def[ \t]+{re.escape(entry_point)}[ \t]*\(", re.MULTILINE)


def defines(code: str, entry_point: str) -> bool:
    return _definition(entry_point).search(code) is not None


def as_completion(code: str, entry_point: str) -> str:
    """Make `code` valid as text appended to the prompt."""
    if defines(code, entry_point):
        return "\n" + dedent(code).strip("\n") + "\n"
    body = code.strip("\n")
    if not body.strip():
        return ""
    first = next(line for line in body.splitlines() if line.strip())
    if not first.startswith((" ", "\t")):
        body = textwrap.indent(dedent(body), "    ")
    return body + "\n"


def extract(
    response: str, entry_point: str, block: BlockChoice = "first", program: bool = False, rules: Rules = "auto"
) -> Extraction:
    """The code to append to the prompt of a task whose function is `entry_point`, and where it
    was found (see the module doc)."""
    if rules == "seed":
        code, found = _seed_code(response, block)
    else:
        code, found = _auto_code(response, entry_point, block)
        if not program and defines(code, entry_point):
            code = _without_examples(code, entry_point)
    code = program_completion(code, entry_point) if program else as_completion(code, entry_point)
    return Extraction(code, found if code.strip() else "none")


def extract_completion(
    response: str, entry_point: str, block: BlockChoice = "first", program: bool = False, rules: Rules = "auto"
) -> str:
    return extract(response, entry_point, block, program, rules).code


def _seed_code(response: str, block: BlockChoice) -> tuple[str, Found]:
    text = strip_thinking(response)
    blocks = code_blocks(text)
    if blocks:
        return _pick(blocks, block), "fence"
    return text, "text"


def _auto_code(response: str, entry_point: str, block: BlockChoice) -> tuple[str, Found]:
    """Rules 2-4: the fences or tags that define the entry point, else undelimited text that does
    (an answer followed by a fenced example), else the seed's choice."""
    text = strip_thinking(response)
    fences, tags = code_blocks(text), tagged_blocks(text)
    definition = _definition(entry_point)
    if any(definition.search(code) for code in fences):
        return _choose(fences, entry_point, block), "fence"
    if any(definition.search(code) for code in tags):
        return code_in_text(_choose(tags, entry_point, block), entry_point, block), "tag"
    if fences and definition.search(text):
        return code_in_text(text, entry_point, block), "text"
    if fences:
        return _pick(fences, block), "fence"
    if tags:
        return code_in_text(_pick(tags, block), entry_point, block), "tag"
    return code_in_text(text, entry_point, block), "text"


def _pick(candidates: list, block: BlockChoice):
    return candidates[0] if block == "first" else candidates[-1]


def _choose(candidates: list[str], entry_point: str, block: BlockChoice, prefer_parsing: bool = False) -> str:
    """Rule 3: the candidate that defines the entry point, after the import-only ones before it;
    with `prefer_parsing`, one that parses before one that does not."""
    definition = _definition(entry_point)
    defining = [i for i, code in enumerate(candidates) if definition.search(code)]
    preferred = defining or list(range(len(candidates)))
    if prefer_parsing:
        preferred = _parsing(candidates, preferred) or preferred
    chosen = _pick(preferred, block)
    imports = [code for code in candidates[:chosen] if _only_imports(code)] if defining else []
    if not imports:
        return candidates[chosen]
    # dedented together: a chosen block indented as a whole would not line up with its imports
    return "".join(dedent(code).strip("\n") + "\n" for code in [*imports, candidates[chosen]])


_IMPORT_LINE = re.compile(r"[ \t]*(?:import[ \t]|from[ \t]+[\w.]+[ \t]+import[ \t])")


def _only_imports(code: str) -> bool:
    lines = [line for line in code.splitlines() if line.strip()]
    return bool(lines) and all(_IMPORT_LINE.match(line) for line in lines)


# ---- code in undelimited text (rule 4) -----------------------------------------------------------

# A line that opens a run of code: a definition, an import, a decorator.
_CODE_START = re.compile(
    r"^([ \t]*)(?:(?:async[ \t]+)?def[ \t]+\w|class[ \t]+\w|import[ \t]+\w|from[ \t]+[\w.]+[ \t]+import[ \t]|@[A-Za-z_])",
    re.MULTILINE,
)
# What a line of code may start with (after its indentation): a keyword, an assignment, a call, a
# comment, a string, a closing bracket. Prose does not; it starts with a capital or a list marker.
_CODE_LIKE = (
    r"(?:[#@)\]}\"']|(?:def|class|import|from|return|for|while|if|elif|else|try|except|finally|with|async|"
    r"await|yield|raise|assert|pass|break|continue|global|nonlocal|del|lambda|print|match|case)\b|"
    r"[A-Za-z_][\w.]*[ \t]*(?:\[[^\]\n]*\][ \t]*)?(?:[-+*/%&|^@<>]|//|\*\*|>>|<<)?=(?!=)|"
    r"[A-Za-z_][\w.]*[ \t]*,[^\n]*=|[A-Za-z_][\w.]*\()"
)
_ANY_CODE_LINE = re.compile(rf"^[ \t]*{_CODE_LIKE}", re.MULTILINE)


def _run_end(indent: str) -> re.Pattern:
    """The first line that ends a run of code opened at `indent`: not blank, and either indented
    less, or at `indent` and not code-like (prose)."""
    return re.compile(
        rf"^(?![ \t]*\r?$)(?:(?!{re.escape(indent)})|{re.escape(indent)}(?![ \t])(?!{_CODE_LIKE}))", re.MULTILINE
    )


def code_segments(text: str) -> list[str]:
    """The runs of code lines in `text` (each dedented), at most MAX_SEGMENTS of them."""
    segments, start = [], 0
    while len(segments) < MAX_SEGMENTS and (opening := _CODE_START.search(text, start)):
        ending = _run_end(opening.group(1)).search(text, text.find("\n", opening.start()) + 1 or len(text))
        end = ending.start() if ending else len(text)
        segments.append(dedent(text[opening.start() : end]).strip("\n") + "\n")
        start = max(end, opening.end())
    return segments


def code_in_text(text: str, entry_point: str, block: BlockChoice = "first") -> str:
    """Rule 4: the code in undelimited text, or "" where it has none."""
    if _parses_as_code(text):
        return text
    segments = code_segments(text)
    if not segments:
        return text if _ANY_CODE_LINE.search(text) else ""
    return _choose(segments, entry_point, block, prefer_parsing=True)


def _parsing(candidates: list[str], indexes: list[int]) -> list[int]:
    """Those of `indexes` whose candidate parses, within one PARSE_LIMIT of parsing in all."""
    budget, parsing = PARSE_LIMIT, []
    for i in indexes:
        budget -= len(candidates[i])
        if budget < 0:
            break
        if _parses(candidates[i]):
            parsing.append(i)
    return parsing


def _parse(code: str) -> ast.Module | None:
    """The module `code` parses to; None where it does not, or is too large to parse here."""
    if len(code) > PARSE_LIMIT:
        return None
    try:
        return ast.parse(code)
    except (SyntaxError, ValueError, RecursionError, MemoryError):  # ValueError: NUL bytes
        return None


def _parses(code: str) -> bool:
    return _parse(dedent(code)) is not None


def _parses_as_code(text: str) -> bool:
    """Whether `text` as a whole is Python: it parses, and is more than a bare word or number
    (a one-word answer parses as an expression)."""
    tree = _parse(dedent(text).strip("\n"))
    return tree is not None and any(
        not (isinstance(node, ast.Expr) and isinstance(node.value, (ast.Name, ast.Constant))) for node in tree.body
    )


def _without_examples(code: str, entry_point: str) -> str:
    """Rule 5: a restated HumanEval function without its top-level example asserts and calls."""
    code = dedent(code)
    tree = _parse(code)
    if tree is None:
        return code
    dropped = [node for node in tree.body if _is_example(node, entry_point)]
    if not dropped:
        return code
    lines = code.splitlines(keepends=True)
    for node in reversed(dropped):
        del lines[node.lineno - 1 : node.end_lineno]
    return "".join(lines)


def _is_example(node: ast.stmt, entry_point: str) -> bool:
    if isinstance(node, ast.Assert):
        return True
    if isinstance(node, ast.If):
        return "__name__" in {n.id for n in ast.walk(node.test) if isinstance(n, ast.Name)}
    call = node.value if isinstance(node, ast.Expr) else None
    return (
        isinstance(call, ast.Call)
        and isinstance(call.func, ast.Name)
        and call.func.id in ("print", "input", entry_point)
    )


# ---- MBPP: the whole program ---------------------------------------------------------------------

_DEFINITIONS = (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Assign, ast.AnnAssign)


def _defined_names(node: ast.stmt) -> set[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return {node.name}
    targets = node.targets if isinstance(node, ast.Assign) else [node.target]
    return {n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name)}


def _used_names(node: ast.stmt) -> set[str]:
    return {n.id for n in ast.walk(node) if isinstance(n, ast.Name)}


def _reached(definitions: list[ast.stmt], names: dict[int, set[str]], entry_point: str) -> set[str]:
    """The names the entry point reaches through the definitions; every defined name where the
    entry point is not defined here (the run then says what is wrong)."""
    by_name: dict[str, list[ast.stmt]] = {}
    for node in definitions:
        for name in names[id(node)]:
            by_name.setdefault(name, []).append(node)
    if entry_point not in by_name:
        return set(by_name)
    reached, todo = set(), [entry_point]
    while todo:
        name = todo.pop()
        if name in reached:
            continue
        reached.add(name)
        for node in by_name.get(name, ()):
            todo.extend(_used_names(node) - reached)
    return reached


def program_completion(code: str, entry_point: str) -> str:
    """MBPP: `code` as a whole program to append to the docstring prompt (see the module doc)."""
    code = dedent(code).strip("\n")
    if not code.strip():
        return ""
    tree = _parse(code)
    if tree is None:
        return "\n" + code + "\n"
    definitions = [node for node in tree.body if isinstance(node, _DEFINITIONS)]
    names = {id(node): _defined_names(node) for node in definitions}
    reached = _reached(definitions, names, entry_point)
    lines = code.splitlines(keepends=True)
    kept = []
    for node in tree.body:
        if isinstance(node, (ast.Import, ast.ImportFrom)) or (id(node) in names and names[id(node)] & reached):
            first = min([node.lineno] + [d.lineno for d in getattr(node, "decorator_list", [])])
            kept.append("".join(lines[first - 1 : node.end_lineno]).rstrip())
    return "\n" + "\n".join(kept) + "\n" if kept else "\n" + code + "\n"
