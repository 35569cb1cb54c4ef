"""
Frozen records (:mod:`mockllm.frozen`): the equality, hash, representation and immutability a
``@dataclass(frozen=True)`` has, and only records whose fields are all positional.
"""

from __future__ import annotations

from dataclasses import FrozenInstanceError, dataclass, field, replace

from twisted.trial import unittest

from mockllm.frozen import Frozen, frozen


@frozen
class Point(Frozen):
    """A record with a default."""

    x: int
    y: tuple[int, ...] = ()


@frozen(slots=False)
class Loose(Frozen):
    """A record without slots, with a factory default."""

    items: list[int] = field(default_factory=list)


@frozen
class Other(Frozen):
    """A record of another class with the same fields as :class:`Point`."""

    x: int
    y: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Reference:
    """What ``dataclasses`` itself generates, to compare with."""

    x: int
    y: tuple[int, ...] = ()


class FrozenTests(unittest.TestCase):
    """:func:`frozen` against ``@dataclass(frozen=True)``."""

    def test_equality_and_hash(self) -> None:
        """Equal fields: equal and the same hash as the dataclass's; other values or another class: not equal."""
        self.assertEqual(Point(1, (2,)), Point(1, (2,)))
        self.assertEqual(hash(Point(1, (2,))), hash(Reference(1, (2,))))
        self.assertNotEqual(Point(1), Point(2))
        self.assertNotEqual(Point(1), Other(1))
        self.assertNotEqual(Point(1), (1, ()))
        self.assertEqual(len({Point(1), Point(1), Point(2)}), 2)

    def test_repr(self) -> None:
        """The representation is the dataclass's, class name included."""
        self.assertEqual(repr(Point(1, (2,))), repr(Reference(1, (2,))).replace("Reference", "Point"))
        self.assertEqual(repr(Loose([3])), "Loose(items=[3])")

    def test_immutable_and_slotted(self) -> None:
        """Fields cannot be set or deleted; a slotted record has no ``__dict__``; replace makes a new one."""
        point = Point(1)
        with self.assertRaises(FrozenInstanceError):
            point.x = 2  # type: ignore[misc]
        with self.assertRaises(FrozenInstanceError):
            del point.x
        self.assertFalse(hasattr(point, "__dict__"))
        self.assertEqual(replace(point, x=5), Point(5))
        self.assertEqual(Loose().items, [])

    def test_only_positional_fields_of_frozen_subclasses(self) -> None:
        """A class that is not a :class:`Frozen`, or has a keyword-only or non-init field, is refused."""
        with self.assertRaises(TypeError):
            frozen(type("Plain", (), {"__annotations__": {"x": "int"}}))
        with self.assertRaises(TypeError):
            frozen(type("KeywordOnly", (Frozen,), {"__annotations__": {"x": "int"}, "x": field(kw_only=True)}))
        with self.assertRaises(TypeError):
            frozen(type("Hidden", (Frozen,), {"__annotations__": {"x": "int"}, "x": field(init=False, default=0)}))
