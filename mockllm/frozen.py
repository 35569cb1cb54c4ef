"""
Frozen records, defined cheaply: :func:`frozen` and :class:`Frozen`.

A frozen dataclass takes about a millisecond to define: ``dataclasses`` writes the source of its
``__init__``, ``__repr__``, ``__eq__``, ``__hash__``, ``__setattr__`` and ``__delattr__`` and
compiles each one, and mockllm defines some fifty at start-up (plans, faults, steps, replies, the
configuration): a third of the time ``import mockllm.tap`` takes.  A :func:`frozen` record is a frozen
dataclass (slotted unless asked otherwise) whose ``__eq__``, ``__hash__`` and ``__repr__`` are
:class:`Frozen`'s, written once for every record, with the results the generated ones give:
fields compared in order with an instance of the same class only, the hash of their tuple,
``Name(field=value, ...)``.  Defining one costs half as much.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any, TypeVar

R = TypeVar("R", bound="Frozen")


class Frozen:
    """The equality, hash and representation every :func:`frozen` record shares."""

    __slots__ = ()
    #: The field names, in order (``dataclasses`` sets it on each record).
    __match_args__: tuple[str, ...] = ()

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
    """``@dataclass(frozen=True, slots=slots)`` for a :class:`Frozen` subclass, with its
    ``__eq__``, ``__hash__`` and ``__repr__``; every field must be a positional ``__init__`` field."""

    def make(cls: type[R]) -> type[R]:
        if not issubclass(cls, Frozen):
            raise TypeError(f"{cls.__qualname__}: a frozen record must subclass Frozen")
        made = dataclass(frozen=True, slots=slots, eq=False, repr=False)(cls)
        if made.__match_args__ != tuple(f.name for f in fields(made)):
            raise TypeError(f"{cls.__qualname__}: every field of a record must be a positional __init__ field")
        return made

    return make if cls is None else make(cls)


__all__ = ["Frozen", "frozen"]
