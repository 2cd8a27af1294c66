"""Strict value codec for candidate outputs crossing the sandbox boundary.

Only exact builtin types are encoded (``type(v) is int``, never a subclass), so an object with a
forged ``__eq__`` cannot reach the comparison: it is rejected inside the sample's own process.
numpy's own scalar types (np.int64, np.float64, np.bool_, np.str_; never a subclass a sample
defines) travel as their builtin values, because EvalPlus compares them with `==` and passes
them; at the top level they keep a tag, because EvalPlus's tolerance path also requires
`type(out) == type(expected)`, which a numpy scalar fails. The wire form is JSON in which every
JSON object is a type tag, so decoding can never build anything but plain builtin values.
"""

from __future__ import annotations

import json
import sys
from typing import NamedTuple


class UnencodableValue(TypeError):
    """The value contains a type outside the builtin whitelist."""


# int -> decimal str is quadratic in the digit count (seconds for HumanEval/83's plus outputs);
# hex is linear. No float exceeds 2**1024, so int/float equality is unaffected by the switch.
_BIG_INT_BITS = 1024


class NumpyScalar(NamedTuple):
    """A decoded top-level output that was a numpy scalar: its builtin value."""

    value: object


def _numpy_scalar(value):
    """The builtin value of a scalar of numpy's own types; None for anything else."""
    numpy = sys.modules.get("numpy")
    if numpy is None or type(value).__module__ != "numpy" or not isinstance(value, numpy.generic):
        return None
    plain = value.item()
    return plain if type(plain) in (bool, int, float, complex, str, bytes) else None


def _to_wire(value):
    kind = type(value)
    if kind is int and value.bit_length() > _BIG_INT_BITS:
        return {"i": hex(value)}
    if value is None or kind is bool or kind is int or kind is float or kind is str:
        return value
    if kind is list:
        return [_to_wire(v) for v in value]
    if kind is tuple:
        return {"t": [_to_wire(v) for v in value]}
    if kind is dict:
        return {"d": [[_to_wire(k), _to_wire(v)] for k, v in value.items()]}
    if kind is set:
        return {"s": [_to_wire(v) for v in value]}
    if kind is frozenset:
        return {"fs": [_to_wire(v) for v in value]}
    if kind is bytes:
        return {"b": value.hex()}
    if kind is complex:
        return {"c": [value.real, value.imag]}
    plain = _numpy_scalar(value)
    if plain is not None:
        return _to_wire(plain)
    raise UnencodableValue(kind.__name__)


def encode(value) -> str:
    """Encode one value; raises UnencodableValue for anything but exact builtin types (and numpy's
    scalars)."""
    try:
        plain = _numpy_scalar(value)
        wire = {"n": _to_wire(plain)} if plain is not None else _to_wire(value)
        return json.dumps(wire, separators=(",", ":"))
    except RecursionError as exc:
        raise UnencodableValue("nesting too deep") from exc


def _from_wire(node):
    if isinstance(node, list):
        return [_from_wire(v) for v in node]
    if not isinstance(node, dict):
        return node
    if len(node) != 1:
        raise ValueError(f"malformed value tag {sorted(node)!r}")
    (tag, payload), = node.items()
    if tag == "i":
        return int(payload, 16)
    if tag == "t":
        return tuple(_from_wire(v) for v in payload)
    if tag == "d":
        return {_from_wire(k): _from_wire(v) for k, v in payload}
    if tag == "s":
        return {_from_wire(v) for v in payload}
    if tag == "fs":
        return frozenset(_from_wire(v) for v in payload)
    if tag == "b":
        return bytes.fromhex(payload)
    if tag == "c":
        return complex(payload[0], payload[1])
    raise ValueError(f"unknown value tag {tag!r}")


def decode(text: str):
    """Inverse of encode (a top-level numpy scalar comes back as NumpyScalar). Raises ValueError on
    anything malformed."""
    node = json.loads(text)
    if isinstance(node, dict) and len(node) == 1 and "n" in node:
        return NumpyScalar(_from_wire(node["n"]))
    return _from_wire(node)


# Outputs whose encoding exceeds this are compared by digest instead of being shipped whole:
# HumanEval/15 alone has 147 MB of expected strings over its plus inputs.
DIGEST_THRESHOLD_CHARS = 64 * 1024


def _equality_form(value):
    """A form in which values that compare equal with == map to the same JSON (1 == 1.0 == True,
    {1, 2} == frozenset({2, 1}), dict order ignored), while list != tuple stays distinct."""
    plain = _numpy_scalar(value)
    if plain is not None:
        value = plain
    kind = type(value)
    if kind is bool:
        return int(value)
    if kind is int and value.bit_length() > _BIG_INT_BITS:
        return ["i", hex(value)]
    if kind is float:
        if value != value:
            raise ValueError("NaN never compares equal")
        return int(value) if value.is_integer() else value
    if kind is complex:
        return _equality_form(value.real) if value.imag == 0 else ["c", value.real, value.imag]
    if kind is list:
        return ["l", [_equality_form(v) for v in value]]
    if kind is tuple:
        return ["t", [_equality_form(v) for v in value]]
    if kind in (set, frozenset):
        return ["s", sorted((_equality_form(v) for v in value), key=_sort_key)]
    if kind is dict:
        items = [[_equality_form(k), _equality_form(v)] for k, v in value.items()]
        return ["d", sorted(items, key=_sort_key)]
    if kind is bytes:
        return ["b", value.hex()]
    return value  # None, int, str


def _sort_key(form) -> str:
    return json.dumps(form, separators=(",", ":"))


NEVER_EQUAL = "-"


def equality_digest(value) -> str:
    """sha256 of the equality form; NEVER_EQUAL when the value contains NaN."""
    import hashlib

    try:
        text = json.dumps(_equality_form(value), separators=(",", ":"))
    except ValueError:
        return NEVER_EQUAL
    return hashlib.sha256(text.encode()).hexdigest()
