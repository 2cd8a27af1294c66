import math

import pytest

from ray_jobs.sandbox.codec import NEVER_EQUAL, UnencodableValue, decode, encode, equality_digest


@pytest.mark.parametrize("value", [
    None, True, 0, -7, 2 ** 5000, 1.5, float("inf"), "x\ny", [1, [2, (3,)]], (1, "a"), {"k": [1, 2]},
    {(1, 2): {3}}, {1, 2}, frozenset({"a"}), b"\x00\xff", 3 + 4j, [],
])
def test_round_trip_keeps_exact_types(value):
    back = decode(encode(value))
    assert back == value and type(back) is type(value)


def test_big_ints_are_linear_hex_on_the_wire():
    assert '"i"' in encode(10 ** 5000)


@pytest.mark.parametrize("value", [
    type("Eq", (), {"__eq__": lambda s, o: True})(),
    type("I", (int,), {})(3),
    type("S", (str,), {})("x"),
    [1, object()],
    {"k": type("L", (list,), {})()},
])
def test_non_builtin_types_are_rejected(value):
    with pytest.raises(UnencodableValue):
        encode(value)


def test_malformed_wire_is_rejected():
    for text in ['{"x": 1}', '{"t": [1], "s": [2]}', "[1,"]:
        with pytest.raises(ValueError):
            decode(text)


def test_equality_digest_matches_python_equality():
    assert equality_digest([1, 2.0, True]) == equality_digest([1.0, 2, 1])
    assert equality_digest({1, 2}) == equality_digest(frozenset({2, 1}))
    assert equality_digest({"a": 1, "b": 2}) == equality_digest({"b": 2, "a": 1})
    assert equality_digest([1, 2]) != equality_digest((1, 2))
    assert equality_digest(2 ** 2000) == equality_digest(2 ** 2000)
    assert equality_digest(0.1) != equality_digest(0.10000000000000002)
    assert equality_digest([math.nan]) == NEVER_EQUAL
