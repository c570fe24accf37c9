"""A frozen dataclass's JSON form, derived from its fields: every result's `to_dict()`.

Each field is a key, in the order the fields are declared, its value made plain: a dataclass
becomes its own JSON form, a tuple a list, a dict a new dict; numbers stay exact. Where the JSON
differs from the field, the field's metadata says so (`field(metadata=json_key(...))`):

    name     another key                      elements → "params"
    unit     a unit appended to the key        ridge → "ridge_flops_per_byte"
    get      a value read by a dotted path      packing → "packing.dtype" (None stays None)
    value    a value computed from the owner    for the few objects JSON composes
    omit     the field is left out
    spread   some attributes of the field's value, each a key of its own (after `prefix`)
    then     derived properties JSON includes, right after this field: a name, or (key, path)

A class with a JSON form derives from `JsonForm`, which gives it `to_dict()`. It may name its
entry in the schema registry (`json_schema = schema("shapes")`), the first key; and give
`json_order`, every key in the order JSON has them, where that is not the fields' order (the
keys are a contract, their order included): a key there that no field gives is the derived
property of that name. Standard library only; the plan of each class is
worked out once, on its first `to_dict()`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import fields, is_dataclass
from operator import attrgetter
from typing import Any, ClassVar

_KEY = "json"  # the key of a field's metadata that json_key() fills


Then = tuple[str | tuple[str, str | Callable[[Any], Any]], ...]


class _Field:
    """What json_key() says about a field (a plain class: made when the modules load, and cheap)."""

    __slots__ = ("name", "unit", "get", "value", "omit", "spread", "prefix", "then")

    def __init__(
        self, name: str | None, unit: str | None, get: str | None, value: Callable[[Any], Any] | None,
        omit: bool, spread: tuple[str, ...], prefix: str, then: Then,
    ) -> None:  # fmt: skip
        self.name, self.unit, self.get, self.value = name, unit, get, value
        self.omit, self.spread, self.prefix, self.then = omit, spread, prefix, then


_PLAIN = _Field(None, None, None, None, False, (), "", ())


def json_key(
    name: str | None = None,
    *,
    unit: str | None = None,
    get: str | None = None,
    value: Callable[[Any], Any] | None = None,
    omit: bool = False,
    spread: tuple[str, ...] = (),
    prefix: str = "",
    then: Then = (),
) -> Mapping[str, Any]:
    """The metadata of a field whose JSON differs from the field (see the module's docstring)."""
    return {_KEY: _Field(name, unit, get, value, omit, spread, prefix, then)}


class JsonForm:
    """A result with a JSON form derived from its fields: `to_dict()`."""

    json_schema: ClassVar[str | None] = None  # a value of schemas.SCHEMAS, the first key
    json_order: ClassVar[tuple[str, ...]] = ()  # every key in JSON's order, when not the fields'

    def to_dict(self) -> dict[str, Any]:
        """The JSON form (every command's `-f json` is its result's)."""
        return as_json(self)


Getter = Callable[[Any], Any]
_PLANS: dict[type, tuple[tuple[str, Getter], ...]] = {}


def as_json(obj: Any) -> dict[str, Any]:
    """The JSON form of the dataclass `obj`, from its fields."""
    plan = _PLANS.get(type(obj))
    if plan is None:
        plan = _plan(type(obj))
    return {key: plain(get(obj)) for key, get in plan}


_AS_IS = frozenset({int, float, str, bool, type(None)})


def plain(value: Any) -> Any:
    """`value` as JSON holds it: a dataclass as its JSON form, a tuple or list as a list, a dict
    as a new dict; anything else as it is."""
    kind = type(value)
    if kind in _AS_IS:  # the most of them, first
        return value
    if isinstance(value, JsonForm):
        return value.to_dict()
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if is_dataclass(value) and not isinstance(value, type):
        return as_json(value)
    return value


def _path(path: str) -> Getter:
    """A getter of the dotted attribute path `path`; a None on the way gives None."""
    names = path.split(".")
    if len(names) == 1:
        return attrgetter(path)

    def get(obj: Any) -> Any:
        for name in names:
            if obj is None:
                return None
            obj = getattr(obj, name)
        return obj

    return get


def _plan(cls: type) -> tuple[tuple[str, Getter], ...]:
    """(key, getter) of every key of `cls`'s JSON form, in order."""
    entries: list[tuple[str, Getter]] = []
    for f in fields(cls):
        spec: _Field = f.metadata.get(_KEY, _PLAIN)
        if spec.spread:
            entries += [(spec.prefix + name, _path(f"{f.name}.{name}")) for name in spec.spread]
        elif not spec.omit:
            key = (spec.name or f.name) + (f"_{spec.unit}" if spec.unit else "")
            entries.append((key, spec.value or _path(spec.get or f.name)))
        for item in spec.then:
            key, how = (item, item) if isinstance(item, str) else item
            entries.append((key, _path(how) if isinstance(how, str) else how))
    keys = [key for key, _ in entries]
    if len(set(keys)) != len(keys):
        raise TypeError(f"{cls.__name__}: a JSON key twice in {keys}")
    order: tuple[str, ...] = getattr(cls, "json_order", ())
    if order:
        missing = [key for key in keys if key not in order]
        if missing or len(set(order)) != len(order):
            raise TypeError(f"{cls.__name__}.json_order {order} must name each of its keys once; it lacks {missing}")
        by_key = dict(entries)
        entries = [(key, by_key.get(key) or _path(key)) for key in order]
    schema = getattr(cls, "json_schema", None)
    if schema is not None:
        entries.insert(0, ("schema", lambda obj: schema))
    plan = tuple(entries)
    _PLANS[cls] = plan
    return plan
