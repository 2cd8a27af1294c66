"""Strict value codec for candidate outputs crossing the sandbox boundary.

Only exact builtin types are encoded (``type(v) is int``, never a subclass), so an object with a
forged ``__eq__`` cannot reach the comparison: it is rejected inside the sample's own process.
numpy's own scalar types (np.int64, np.float64, np.bool_, np.str_; never a subclass a sample
defines) travel as their builtin values, because EvalPlus compares them with `==` and passes
them; at the top level they keep a tag, because EvalPlus's tolerance path also requires
`type(out) == type(expected)`, which a numpy scalar fails. The wire form is JSON in which every
JSON object is a type tag, so decoding can never build anything but plain builtin values.

With ``dict_subclasses`` (MBPP, where a canonical solution returns a `collections.Counter`),
the exact stdlib classes Counter, defaultdict and OrderedDict are encoded too, by value, read
with `dict.items` (no method of theirs that a sample could patch runs): a Counter decodes as a
Counter, since Counter == Counter ignores zero counts; the other two as plain dicts, which they
equal exactly as a dict does, whatever they are compared with.
"""

from __future__ import annotations

import collections
import json
import sys
from typing import NamedTuple

# bound when the fork server imports this module, before any sample runs
_COUNTER, _DEFAULTDICT, _ORDEREDDICT = collections.Counter, collections.defaultdict, collections.OrderedDict
_DICT_LIKE = (dict, _COUNTER, _DEFAULTDICT, _ORDEREDDICT)


class UnencodableValue(TypeError):
    """The value contains a type outside the builtin whitelist."""


# int -> decimal str is quadratic in the digit count (seconds for HumanEval/83's plus outputs);
# hex is linear. No float exceeds 2**1024, so int/float equality is unaffected by the switch.
_BIG_INT_BITS = 1024
_INT_BOUND = 1 << _BIG_INT_BITS


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


_SCALARS = {type(None), bool, float, str}  # each its own wire form; so is an int within 1024 bits
_NUMBERS = {int, float, bool}


def _scalars_only(items: list | tuple) -> bool:
    """Every item is its own wire form, checked at C speed: a sequence of them needs no walk."""
    types = set(map(type, items))
    if types <= _SCALARS:
        return True
    return types <= _NUMBERS and -_INT_BOUND < min(items) and max(items) < _INT_BOUND


def _to_wire(value, dicts: bool = False):
    kind = type(value)
    if kind is int and value.bit_length() > _BIG_INT_BITS:
        return {"i": hex(value)}
    if value is None or kind is bool or kind is int or kind is float or kind is str:
        return value
    if kind is list:
        return value if _scalars_only(value) else [_to_wire(v, dicts) for v in value]
    if kind is tuple:
        return {"t": value if _scalars_only(value) else [_to_wire(v, dicts) for v in value]}
    if kind is dict:
        return {"d": [[_to_wire(k, dicts), _to_wire(v, dicts)] for k, v in value.items()]}
    if kind is set:
        return {"s": [_to_wire(v, dicts) for v in value]}
    if kind is frozenset:
        return {"fs": [_to_wire(v, dicts) for v in value]}
    if kind is bytes:
        return {"b": value.hex()}
    if kind is complex:
        return {"c": [value.real, value.imag]}
    if dicts and (kind is _COUNTER or kind is _DEFAULTDICT or kind is _ORDEREDDICT):
        pairs = [[_to_wire(k, dicts), _to_wire(v, dicts)] for k, v in dict.items(value)]
        return {"C" if kind is _COUNTER else "d": pairs}
    plain = _numpy_scalar(value)
    if plain is not None:
        return _to_wire(plain)
    raise UnencodableValue(kind.__name__)


def encode(value, dict_subclasses: bool = False) -> str:
    """Encode one value; raises UnencodableValue for anything but exact builtin types (and numpy's
    scalars; with `dict_subclasses`, Counter, defaultdict and OrderedDict)."""
    try:
        plain = _numpy_scalar(value)
        wire = {"n": _to_wire(plain)} if plain is not None else _to_wire(value, dict_subclasses)
        return _dumps_plain(wire)
    except RecursionError as exc:
        raise UnencodableValue("nesting too deep") from exc


# Building a set or dict of n distinct values that share one hash takes n**2/2 comparisons (a
# sample's set of multiples of 2**61 - 1: 30,000 ints cost 16 s). Honest outputs never have more
# than a couple of distinct values per hash; a decoded output with more is refused.
SAME_HASH_LIMIT = 32


def hash_spread(items: list) -> list:
    """`items`, once it is sure that a set or dict of them builds in linear time; ValueError if
    more than SAME_HASH_LIMIT of them share a hash (TypeError for an unhashable one). Counting
    by hash value is itself linear: an int hash value hashes to itself."""
    counts: dict[int, int] = {}
    for value in map(hash, items):
        seen = counts.get(value, 0) + 1
        if seen > SAME_HASH_LIMIT:
            raise ValueError("too many values with the same hash")
        counts[value] = seen
    return items


def _pairs(payload) -> tuple[list, list]:
    keys, values = [], []
    for k, v in payload:
        keys.append(_from_wire(k))
        values.append(_from_wire(v))
    return hash_spread(keys), values


def _flat(node: list) -> bool:
    """No item of this list json.loads made is a container: the list is its own value."""
    types = set(map(type, node))
    return list not in types and dict not in types


def _from_wire(node):
    if isinstance(node, list):
        return node if _flat(node) else [_from_wire(v) for v in node]
    if not isinstance(node, dict):
        return node
    if len(node) != 1:
        raise ValueError(f"malformed value tag {sorted(node)!r}")
    ((tag, payload),) = node.items()
    if tag == "i":
        return int(payload, 16)
    if tag == "t":
        return tuple(payload if _flat(payload) else map(_from_wire, payload))
    if tag == "d":
        return dict(zip(*_pairs(payload)))
    if tag == "C":
        return _COUNTER(dict(zip(*_pairs(payload))))
    if tag == "s":
        return set(hash_spread([_from_wire(v) for v in payload]))
    if tag == "fs":
        return frozenset(hash_spread([_from_wire(v) for v in payload]))
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


_FLAT_NODES = {type(None), bool, int, float, complex}


def exceeds_nodes(value, limit: int) -> bool:
    """Whether `value` has more than `limit` nodes (containers and scalars, a string counting one
    per character), counted with an early exit: each takes at least one character on the wire, so
    such a value's encoding exceeds `limit` characters, and encoding it only to learn that (a list
    of a million tuples, HumanEval/15's megabyte strings) is spared."""
    stack, count = [value], 0  # every node on the stack is yet to be counted: it stays under `limit`
    while stack:
        node = stack.pop()
        count += 1
        kind = type(node)
        if kind is str:
            count += len(node)
            if count > limit:
                return True
        elif kind is list or kind is tuple or kind is set or kind is frozenset:
            types = set(map(type, node))
            if types <= _FLAT_NODES:  # counted at C speed, not walked
                count += len(node)
            elif types == _STR:
                count += len(node) + sum(map(len, node))
            else:
                if count + len(stack) + len(node) > limit:
                    return True
                stack.extend(node)
            if count > limit:
                return True
        elif kind is dict or kind is _COUNTER or kind is _DEFAULTDICT or kind is _ORDEREDDICT:
            if count + len(stack) + 2 * len(node) > limit:
                return True
            for pair in dict.items(node):
                stack.extend(pair)
        elif count > limit:
            return True
    return False


# The digest is sha256 of this JSON text, written in pieces (never held whole) with json's C
# encoder doing the strings and plain ints: a form in which values that compare equal with ==
# map to the same text (1 == 1.0 == True, {1, 2} == frozenset({2, 1}), dict order ignored), while
# list != tuple stays distinct. Byte for byte the text of
#   json.dumps(form, separators=(",", ":")) with form: bool -> int; int beyond 1024 bits ->
#   ["i", hex]; float: NaN never equal, integral -> int; complex -> its real part's form when the
#   imaginary part is 0, else ["c", real, imag]; list -> ["l", [forms]]; tuple -> ["t", [forms]];
#   set, frozenset -> ["s", forms sorted by their text]; dict -> ["d", [[key, value] forms sorted
#   by their text]]; bytes -> ["b", hex]; None, int, str as themselves
# (tests/unit/test_codec.py keeps that reference), so digests cached by earlier versions stay valid.
_JSON = json.JSONEncoder(separators=(",", ":"))
_c_encoder = getattr(json.encoder, "c_make_encoder", None)
_dumps_plain = (
    (lambda enc: lambda v: "".join(enc(v, 0)))(
        _c_encoder(None, None, json.encoder.encode_basestring_ascii, None, ":", ",", False, False, True)
    )
    if _c_encoder is not None
    else _JSON.encode
)
_STR = {str}


class _NaN(Exception):
    pass


def _numbers_text(value: list | tuple) -> str | None:
    """The forms of a sequence of ints, floats and bools as one text, made by one comprehension
    and the C encoder (HumanEval/130: ten million of them; it writes a non-integral float as its
    own form, repr); None where an item needs the item-by-item path (an int beyond 1024 bits, an
    infinity)."""
    forms = [v if type(v) is int else int(v) if type(v) is bool or v.is_integer() else v for v in value]
    if not (-_INT_BOUND < min(forms) and max(forms) < _INT_BOUND):
        return None
    text = _dumps_plain(forms)
    if "N" in text:  # NaN, which min and max can miss
        raise _NaN
    return text


class _Sink:
    """Text pieces into sha256, a megabyte at a time."""

    def __init__(self):
        import hashlib

        self.hash = hashlib.sha256()
        self.parts: list[str] = []
        self.size = 0

    def write(self, text: str) -> None:
        self.parts.append(text)
        self.size += len(text)
        if self.size > 1 << 20:
            self.flush()

    def flush(self) -> None:
        self.hash.update("".join(self.parts).encode())
        self.parts.clear()
        self.size = 0


def _text(value, dicts: bool) -> str:
    parts: list[str] = []
    _write_form(value, parts.append, dicts)
    return "".join(parts)


def _write_form(value, write, dicts: bool) -> None:
    plain = _numpy_scalar(value)
    if plain is not None:
        value = plain
    kind = type(value)
    if kind is str:
        write(_dumps_plain(value))
    elif kind is int:
        write(int.__repr__(value) if -_INT_BOUND < value < _INT_BOUND else _JSON.encode(["i", hex(value)]))
    elif kind is bool:
        write("1" if value else "0")
    elif kind is float:
        if value != value:
            raise _NaN
        write(int.__repr__(int(value)) if value.is_integer() else _JSON.encode(value))
    elif kind is list or kind is tuple:
        write('["l",' if kind is list else '["t",')
        types = set(map(type, value))
        if types == _STR or (types == {int} and -_INT_BOUND < min(value) and max(value) < _INT_BOUND):
            write(_dumps_plain(value))  # the common large cases, at the C encoder's speed
        elif types and types <= _NUMBERS and (numbers := _numbers_text(value)) is not None:
            write(numbers)
        else:
            write("[")
            separator = ""
            for item in value:
                inner = type(item)
                if (inner is tuple or inner is list) and item and set(map(type, item)) == _STR:
                    # inlined for lists of string tuples (Mbpp/255: 1.7 million of them)
                    write(separator + ('["t",' if inner is tuple else '["l",') + _dumps_plain(item) + "]")
                else:
                    if separator:
                        write(separator)
                    _write_form(item, write, dicts)
                separator = ","
            write("]")
        write("]")
    elif kind is set or kind is frozenset:
        write('["s",[' + ",".join(sorted(_text(v, dicts) for v in value)) + "]]")
    elif kind is dict or (dicts and any(kind is k for k in _DICT_LIKE)):  # a Counter as the dict it equals
        items = sorted("[" + _text(k, dicts) + "," + _text(v, dicts) + "]" for k, v in dict.items(value))
        write('["d",[' + ",".join(items) + "]]")
    elif value is None:
        write("null")
    elif kind is complex:
        if value.imag == 0:
            _write_form(value.real, write, dicts)
        else:
            write(_JSON.encode(["c", value.real, value.imag]))
    elif kind is bytes:
        write(_JSON.encode(["b", value.hex()]))
    else:
        raise UnencodableValue(kind.__name__)


NEVER_EQUAL = "-"


def equality_digest(value, dict_subclasses: bool = False) -> str:
    """sha256 of the equality form; NEVER_EQUAL when the value contains NaN; UnencodableValue for
    what `encode` refuses. (A Counter's zero counts count here, unlike in Counter == Counter: only
    outputs over the digest threshold are compared this way.)"""
    sink = _Sink()
    try:
        _write_form(value, sink.write, dict_subclasses)
    except _NaN:
        return NEVER_EQUAL
    except RecursionError as exc:
        raise UnencodableValue("nesting too deep") from exc
    sink.flush()
    return sink.hash.hexdigest()


def encode_or_digest(value, dict_subclasses: bool = False) -> tuple[str, str]:
    """("O", encoded text), or ("H", equality digest) where the encoding would exceed
    DIGEST_THRESHOLD_CHARS; UnencodableValue for a value `encode` refuses."""
    if not exceeds_nodes(value, DIGEST_THRESHOLD_CHARS):
        text = encode(value, dict_subclasses)
        if len(text) <= DIGEST_THRESHOLD_CHARS:
            return "O", text
    return "H", equality_digest(value, dict_subclasses)
