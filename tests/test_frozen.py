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


@frozen
class Checked(Frozen):
    """A record with a ``__post_init__`` that checks a field."""

    low: int
    high: int = 10

    def __post_init__(self) -> None:
        if self.low > self.high:
            raise ValueError("low above high")


class InitTests(unittest.TestCase):
    """The ``__init__`` :func:`frozen` compiles once per shape behaves as the dataclass's."""

    def test_arguments(self) -> None:
        """Positional and keyword arguments, defaults, a fresh default from a factory each time, and
        the dataclass's errors for a missing, an unknown or a repeated argument."""
        import inspect

        self.assertEqual(Point(y=(3,), x=1), Point(1, (3,)))
        self.assertEqual(str(inspect.signature(Point)), str(inspect.signature(Reference)))
        first, second = Loose(), Loose()
        self.assertEqual((first.items, Loose([1]).items), ([], [1]))
        self.assertIsNot(first.items, second.items)
        for call, message in (
            (lambda: Point(), "Point.__init__() missing 1 required positional argument: 'x'"),
            (lambda: Point(1, z=2), "Point.__init__() got an unexpected keyword argument 'z'"),
            (lambda: Point(1, x=2), "Point.__init__() got multiple values for argument 'x'"),
            (lambda: Point(1, (), 3), "Point.__init__() takes from 2 to 3 positional arguments but 4 were given"),
        ):
            with self.assertRaises(TypeError) as raised:
                call()
            self.assertEqual(str(raised.exception), message)

    def test_post_init(self) -> None:
        """``__post_init__`` runs once every field is set."""
        self.assertEqual(Checked(1).high, 10)
        with self.assertRaises(ValueError):
            Checked(11)

    def test_shape_shared(self) -> None:
        """Records of the same shape share one compiled code (renamed), others do not."""
        self.assertEqual(Point.__init__.__code__.co_code, Other.__init__.__code__.co_code)
        self.assertEqual(Point.__init__.__code__.co_varnames, ("self", "x", "y"))
        self.assertNotEqual(Point.__init__.__code__.co_code, Loose.__init__.__code__.co_code)

    def test_non_default_after_default(self) -> None:
        """A field without a default after one with a default is refused, as ``dataclasses`` refuses it."""
        with self.assertRaises(TypeError):
            frozen(type("Order", (Frozen,), {"__annotations__": {"x": "int", "y": "int"}, "x": 0}))

    def test_copy_and_pickle(self) -> None:
        """``copy``, ``deepcopy`` and ``pickle`` give an equal record, slotted or not."""
        import copy
        import pickle

        for record in (Point(1, (2,)), Loose([1, 2])):
            self.assertEqual(copy.copy(record), record)
            self.assertEqual(copy.deepcopy(record), record)
            self.assertEqual(pickle.loads(pickle.dumps(record)), record)
