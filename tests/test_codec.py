import math

import pytest

from ray_jobs.sandbox.codec import NEVER_EQUAL, NumpyScalar, UnencodableValue, decode, encode, equality_digest


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


def test_numpy_scalars_travel_as_their_values_and_keep_a_top_level_tag():
    """EvalPlus compares with ==, so np.int64(3) passes for 3; its tolerance path also asserts
    type(out) == type(expected), which a numpy scalar fails: the tag keeps that distinguishable."""
    np = pytest.importorskip("numpy")
    assert decode(encode(np.int64(3))) == NumpyScalar(3)
    assert decode(encode([np.float64(1.5), np.bool_(True)])) == [1.5, True]
    assert decode(encode(np.str_("a"))) == NumpyScalar("a")
    assert equality_digest([np.int64(1)]) == equality_digest([1])
    with pytest.raises(UnencodableValue):
        encode(type("Forged", (np.float64,), {"__eq__": lambda s, o: True})(0.0))  # a subclass: not numpy's
    with pytest.raises(UnencodableValue):
        encode(np.arange(3))
