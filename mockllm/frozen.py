"""
Frozen records, defined cheaply: :func:`frozen` and :class:`Frozen`.

A frozen dataclass takes about half a millisecond to define: ``dataclasses`` writes the source of
its ``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__`` and ``__delattr__`` and
compiles each one, and mockllm defines some fifty at start-up (plans, faults, steps, replies, the
configuration): a third of the time ``import mockllm.tap`` took.  A :func:`frozen` record is a
dataclass (slotted unless asked otherwise) that ``dataclasses`` writes no method for: its
``__eq__``, ``__hash__``, ``__repr__``, ``__setattr__`` and ``__delattr__`` are :class:`Frozen`'s,
written once for every record, with the results the generated ones give (fields compared in
order with an instance of the same class only, the hash of their tuple, ``Name(field=value,
...)``, ``FrozenInstanceError`` on assignment); its ``__init__`` is compiled once per *shape*
(how many fields, which have a default factory, whether there is a ``__post_init__``) and given
the record's parameter names, field names and defaults, so that records of the same shape share
one compilation.  It sets each field as a frozen dataclass's does, then calls ``__post_init__``.
``dataclasses.fields``, ``replace`` and ``asdict`` work on it as on any dataclass.
"""

from __future__ import annotations

import builtins
from dataclasses import MISSING, Field, FrozenInstanceError, dataclass, fields
from functools import lru_cache
from types import CodeType, FunctionType
from typing import Any, TypeVar

R = TypeVar("R", bound="Frozen")

#: The default of a parameter whose field has a default factory: "call the factory".
_FACTORY = object()


class Frozen:
    """The equality, hash, representation and immutability every :func:`frozen` record shares."""

    __slots__ = ()
    #: The field names, in order (``dataclasses`` sets it on each record).
    __match_args__: tuple[str, ...] = ()

    def __setattr__(self, name: str, value: object) -> None:
        """A record is frozen: ``FrozenInstanceError``, as a frozen dataclass raises."""
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        """A record is frozen: ``FrozenInstanceError``, as a frozen dataclass raises."""
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __getstate__(self) -> list[Any]:
        """The fields' values, in order (pickling and ``copy``, as a frozen dataclass's)."""
        return list(self._values())

    def __setstate__(self, state: list[Any]) -> None:
        """Set the fields from :meth:`__getstate__`'s values (unpickling and ``copy``)."""
        for name, value in zip(self.__match_args__, state):
            object.__setattr__(self, name, value)

    def _values(self) -> tuple[Any, ...]:
        """The fields' values, in order."""
        return tuple(getattr(self, name) for name in self.__match_args__)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()  # type: ignore[attr-defined]
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values())

    def __repr__(self) -> str:
        values = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{self.__class__.__qualname__}({values})"


def frozen(cls: type[R] | None = None, /, *, slots: bool = True) -> Any:
    """A frozen dataclass (slotted if ``slots``) of a :class:`Frozen` subclass, with its methods (see
    the module's docstring); every field must be a positional ``__init__`` field."""

    def make(cls: type[R]) -> type[R]:
        if not issubclass(cls, Frozen):
            raise TypeError(f"{cls.__qualname__}: a frozen record must subclass Frozen")
        made = dataclass(init=False, slots=slots, eq=False, repr=False)(cls)
        found = fields(made)
        if made.__match_args__ != tuple(f.name for f in found):
            raise TypeError(f"{cls.__qualname__}: every field of a record must be a positional __init__ field")
        made.__init__ = _init(made, found)  # type: ignore[misc]
        return made

    return make if cls is None else make(cls)


def _init(cls: type, found: tuple[Field, ...]) -> FunctionType:
    """``cls.__init__``: its shape's code with the record's names, fields and defaults."""
    names = tuple(f.name for f in found)
    code = _init_code(tuple(f.default_factory is not MISSING for f in found), hasattr(cls, "__post_init__"))
    env: dict[str, Any] = {"__builtins__": builtins, "__name__": cls.__module__, "_set": object.__setattr__, "_FACTORY": _FACTORY}
    defaults: list[Any] = []
    for i, f in enumerate(found):
        env[f"n{i}"] = f.name
        if f.default_factory is not MISSING:
            env[f"f{i}"] = f.default_factory
            defaults.append(_FACTORY)
        elif f.default is not MISSING:
            defaults.append(f.default)
        elif defaults:
            raise TypeError(f"{cls.__qualname__}: non-default argument {f.name!r} follows default argument")
    named = code.replace(co_varnames=("self", *names), co_qualname=f"{cls.__qualname__}.__init__")
    init = FunctionType(named, env, "__init__", tuple(defaults) or None)
    init.__annotations__ = {**{f.name: f.type for f in found}, "return": None}
    return init


@lru_cache(maxsize=None)
def _init_code(factories: tuple[bool, ...], post_init: bool) -> CodeType:
    """The code of an ``__init__`` with a parameter per field (``True``: the field has a default
    factory), setting field ``n<i>`` (a global of the record's ``__init__``) to parameter ``a<i>``."""
    lines = [
        f"    _set(self, n{i}, f{i}() if a{i} is _FACTORY else a{i})" if factory else f"    _set(self, n{i}, a{i})"
        for i, factory in enumerate(factories)
    ]
    if post_init:
        lines.append("    self.__post_init__()")
    parameters = "".join(f", a{i}" for i in range(len(factories)))
    namespace: dict[str, Any] = {}
    exec(f"def __init__(self{parameters}):\n" + ("\n".join(lines) or "    pass"), namespace)
    return namespace["__init__"].__code__


__all__ = ["Frozen", "frozen"]
