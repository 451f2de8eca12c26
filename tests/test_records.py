"""`@record` behaves as `@dataclass(frozen=True)`: the same equality, hash values, repr,
defaults, `replace`, `asdict` and frozenness, on classes of random field layouts."""

from __future__ import annotations

import dataclasses
import pickle
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kvcalc.records import record


def _pair(**extra: object) -> tuple[type, type]:
    def body() -> dict[str, object]:
        return {
            "__annotations__": {"a": "int", "b": "str", "c": "tuple[int, ...]", "d": "int"},
            "b": "x",
            "c": field(default_factory=tuple),
            "d": field(default=7, compare=False),
            "__doc__": "A test class.",
            **extra,
        }

    return (
        record(type("Rec", (), body())),
        dataclass(frozen=True)(type("Rec", (), body())),
    )


REC, DC = _pair()


@given(a=st.integers(), b=st.text(), c=st.lists(st.integers()).map(tuple), d=st.integers())
def test_record_matches_a_frozen_dataclass(a: int, b: str, c: tuple[int, ...], d: int) -> None:
    mine, theirs = REC(a, b, c, d), DC(a, b, c, d)
    assert repr(mine) == repr(theirs)
    assert hash(mine) == hash(theirs)  # hash((a, b, c)): d is compare=False
    assert dataclasses.asdict(mine) == dataclasses.asdict(theirs)
    assert mine == REC(a, b, c, d + 1)  # d does not take part in equality
    assert (mine == REC(a + 1, b, c, d)) is False
    assert mine != theirs  # another class: NotImplemented both ways, as dataclasses do
    assert dataclasses.replace(mine, a=a + 1) == REC(a + 1, b, c, d)
    assert REC(a) == REC(a, "x", (), 7)
    assert REC(a=a, b=b) == REC(a, b)


def test_record_is_frozen_and_keeps_the_dataclass_interface() -> None:
    value = REC(1)
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot assign to field 'a'"):
        value.a = 2  # type: ignore[attr-defined]
    with pytest.raises(dataclasses.FrozenInstanceError, match="cannot delete field 'a'"):
        del value.a  # type: ignore[attr-defined]
    assert dataclasses.is_dataclass(value)
    assert [f.name for f in dataclasses.fields(value)] == ["a", "b", "c", "d"]
    with pytest.raises(TypeError):
        REC()  # a is required, as in the dataclass


def test_post_init_runs_after_the_fields_are_set() -> None:
    def check(self: object) -> None:
        if self.a < 0:  # type: ignore[attr-defined]
            raise ValueError("negative")

    mine, theirs = _pair(__post_init__=check)
    for cls in (mine, theirs):
        with pytest.raises(ValueError, match="negative"):
            cls(-1)
        assert cls(1).a == 1


def test_unsupported_fields_are_refused() -> None:
    class KwOnly:
        a: int = field(kw_only=True)

    with pytest.raises(TypeError, match="kw_only"):
        record(KwOnly)


@record
class Module:
    """A module-level record, to be pickled by reference."""

    a: int
    b: tuple[int, ...] = ()


def test_records_pickle() -> None:
    assert pickle.loads(pickle.dumps(Module(1, (2,)))) == Module(1, (2,))
