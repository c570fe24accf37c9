"""Every result's JSON form comes from its dataclass fields (ffn_calc/json_fields.py) and names its
schema from the one registry (ffn_calc/schemas.py)."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

import pytest

import ffn_calc
from ffn_calc.json_fields import JsonForm, as_json, json_key
from ffn_calc.model.forward import Totals
from ffn_calc.schemas import SCHEMAS, schema


@dataclass(frozen=True)
class Inner:
    size: int
    dims: tuple[int, ...]


@dataclass(frozen=True)
class Outer(JsonForm):
    name: str
    inner: Inner | None = field(metadata=json_key("inner_size", get="inner.size"))
    ridge: float = field(default=1.5, metadata=json_key(unit="flops_per_byte"))
    hidden: int = field(default=0, metadata=json_key(omit=True, then=("twice", ("label", "name"))))
    part: Inner = field(default=Inner(3, (4, 5)), metadata=json_key(spread=("size", "dims"), prefix="part_"))
    table: dict[str, tuple[int, ...]] = field(default_factory=lambda: {"a": (1, 2)})
    nested: Inner = Inner(6, ())
    computed: int = field(default=0, metadata=json_key(value=lambda o: o.nested.size * 10))
    json_schema = schema("shapes")

    @property
    def twice(self) -> float:
        return 2 * self.ridge


def test_the_fields_give_the_keys_and_the_metadata_says_where_json_differs() -> None:
    doc = Outer("x", Inner(7, (1,))).to_dict()
    assert doc == {
        "schema": "ffn-calc/shapes/1",
        "name": "x",
        "inner_size": 7,
        "ridge_flops_per_byte": 1.5,
        "twice": 3.0,
        "label": "x",
        "part_size": 3,
        "part_dims": [4, 5],
        "table": {"a": [1, 2]},
        "nested": {"size": 6, "dims": []},
        "computed": 60,
    }
    assert list(doc)[:3] == ["schema", "name", "inner_size"]  # the fields' order, the schema first
    assert Outer("y", None).to_dict()["inner_size"] is None  # a path through None gives None


def test_json_order_places_every_key_and_reads_a_derived_property() -> None:
    @dataclass(frozen=True)
    class Ordered(JsonForm):
        a: int
        b: int
        json_order = ("b", "total", "a")

        @property
        def total(self) -> int:
            return self.a + self.b

    assert list(Ordered(1, 2).to_dict().items()) == [("b", 2), ("total", 3), ("a", 1)]

    @dataclass(frozen=True)
    class Forgotten(JsonForm):
        a: int
        b: int
        json_order = ("a",)

    with pytest.raises(TypeError, match="lacks"):
        Forgotten(1, 2).to_dict()

    @dataclass(frozen=True)
    class Twice(JsonForm):
        a: int = field(metadata=json_key(then=("b",)))
        b: int = 0

    with pytest.raises(TypeError, match="twice"):
        Twice(1).to_dict()


def test_a_new_field_is_in_the_json_without_a_word_more() -> None:
    @dataclass(frozen=True)
    class Grown(JsonForm):
        a: int
        added: tuple[str, ...] = ("x",)

    assert Grown(1).to_dict() == {"a": 1, "added": ["x"]}
    assert set(ffn_calc.analyze(ffn_calc.layer(1, 2, 8)).to_dict()["totals"]) == {f.name for f in fields(Totals)}


def test_a_schema_not_registered_raises() -> None:
    with pytest.raises(KeyError, match="no JSON schema named 'plot'"):
        schema("plot")


def test_every_command_result_names_its_registered_schema_first() -> None:
    cfg = ffn_calc.layer(1, 4, 8)
    docs = {
        "shapes": ffn_calc.analyze(cfg).to_dict(),
        "train": ffn_calc.train(cfg).to_dict(),
        "roofline": ffn_calc.roofline(cfg, "a100-80gb").to_dict(),
        "explain": ffn_calc.explain(cfg).to_dict(),
        "compare": ffn_calc.compare(1, 4, "relu", "swiglu", 8).to_dict(),
        "sweep": ffn_calc.sweep(1, 4, sizes={"d_model": 8}).to_dict(),
        "models": ffn_calc.models().to_dict(),
        "gpus": ffn_calc.gpus().to_dict(),
        "verify": ffn_calc.verify(cfg).to_dict(),
    }
    assert set(docs) == set(SCHEMAS) - {"roofline-measured"}  # a measurement takes seconds: tests/measure checks its schema
    for name, doc in docs.items():
        assert next(iter(doc.items())) == ("schema", SCHEMAS[name])


def test_as_json_is_to_dict_for_a_plain_dataclass() -> None:
    totals: Any = ffn_calc.analyze(ffn_calc.layer(1, 2, 8)).totals
    assert as_json(totals) == {f.name: getattr(totals, f.name) for f in fields(totals)}
