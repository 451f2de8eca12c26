"""`@record`: what `@dataclass(frozen=True)` makes, for less start-up time.

Python 3.11's `@dataclass(frozen=True)` compiles `__init__`, `__repr__`, `__eq__`,
`__hash__`, `__setattr__` and `__delattr__` from source text, one `exec` each: about
0.8 ms a class on our CI machine. `kvcalc calc` imports eight such classes and `fit`
thirteen, a large part of the start-up margin issue #8 allows over a no-op typer command
(benchmarks/bench_startup.py). `record` lets `dataclasses` collect the fields (so
`fields`, `replace`, `asdict` and `is_dataclass` work as ever), compiles `__init__` alone
and shares generic, `attrgetter`-based methods for the rest: about 0.2 ms a class. Equality,
hash values, repr and frozenness are the dataclass's (tests/test_records.py).
"""

import dataclasses
from collections.abc import Callable
from operator import attrgetter
from typing import Any, TypeVar

from typing_extensions import dataclass_transform

_T = TypeVar("_T")


@dataclass_transform(frozen_default=True, field_specifiers=(dataclasses.field,))
def record(cls: type[_T]) -> type[_T]:
    """Return cls as `@dataclass(frozen=True)` would (eq, hash, repr; fields immutable)."""
    cls = dataclasses.dataclass(init=False, repr=False, eq=False)(cls)
    fields = dataclasses.fields(cls)  # type: ignore[arg-type]
    for f in fields:
        if not f.init or f.kw_only:
            raise TypeError(
                f"record {cls.__name__}.{f.name}: init=False and kw_only are not supported"
            )
    namespace: dict[str, Any] = {"MISSING": dataclasses.MISSING}
    params, body = [], []
    for f in fields:
        if f.default is not dataclasses.MISSING:
            namespace[f"_default_{f.name}"] = f.default
            params.append(f"{f.name}=_default_{f.name}")
            body.append(f"    _set(self, {f.name!r}, {f.name})")
        elif f.default_factory is not dataclasses.MISSING:
            namespace[f"_factory_{f.name}"] = f.default_factory
            params.append(f"{f.name}=MISSING")
            body.append(
                f"    _set(self, {f.name!r}, _factory_{f.name}() if {f.name} is MISSING else {f.name})"
            )
        else:
            if params and "=" in params[-1]:
                raise TypeError(f"non-default argument {f.name!r} follows default argument")
            params.append(f.name)
            body.append(f"    _set(self, {f.name!r}, {f.name})")
    namespace["_post_init"] = getattr(cls, "__post_init__", None)
    source = "\n".join(
        [
            f"def __init__(self, {', '.join(params)}):",
            "    _set = object.__setattr__",
            *body,
            "    if _post_init is not None:",
            "        _post_init(self)",
        ]
    )
    exec(source, namespace)
    init: Callable[..., None] = namespace["__init__"]
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    compared = _getter([f.name for f in fields if f.compare])
    hashed = _getter([f.name for f in fields if (f.compare if f.hash is None else f.hash)])
    shown = tuple(f.name for f in fields if f.repr)
    names = frozenset(f.name for f in fields)

    def __eq__(self: Any, other: Any) -> Any:
        if other.__class__ is not self.__class__:
            return NotImplemented
        return compared(self) == compared(other)

    def __hash__(self: Any) -> int:
        return hash(hashed(self))

    def __repr__(self: Any) -> str:
        shown_values = ", ".join(f"{n}={getattr(self, n)!r}" for n in shown)
        return f"{type(self).__qualname__}({shown_values})"

    def __setattr__(self: Any, name: str, value: Any) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot assign to field {name!r}")
        super(cls, self).__setattr__(name, value)

    def __delattr__(self: Any, name: str) -> None:
        if type(self) is cls or name in names:
            raise dataclasses.FrozenInstanceError(f"cannot delete field {name!r}")
        super(cls, self).__delattr__(name)

    for method in (init, __eq__, __hash__, __repr__, __setattr__, __delattr__):
        if method is not init:
            method.__qualname__ = f"{cls.__qualname__}.{method.__name__}"
        setattr(cls, method.__name__, method)
    return cls


def _getter(names: list[str]) -> Callable[[Any], tuple[Any, ...]]:
    """Return a function giving an object's values of these attributes, as a tuple."""
    if len(names) >= 2:
        return attrgetter(*names)
    if names:
        one = attrgetter(names[0])
        return lambda obj: (one(obj),)
    return lambda obj: ()
