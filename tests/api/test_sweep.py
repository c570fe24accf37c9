"""Sweeps over models, activations, dtypes and d_ff rules; train's model totals."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable

import pytest
from helpers import Result

from ffn_calc import api
from ffn_calc.inputs.resolve import layer_config
from ffn_calc.model.training import TrainingOptions, train

Cli = Callable[..., Result]


def rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_sweep_over_models_one_row_per_combination(cli: Cli) -> None:
    code, out, err = cli("sweep", "--model", "bert-base,gpt2-xl,llama-3-8b", "--seq-len", "512,2048", "-f", "csv")
    assert code == 0, err
    got = rows(out)
    assert [(r["model"], r["seq_len"]) for r in got] == [(m, s) for m in ("bert-base", "gpt2-xl", "llama-3-8b") for s in ("512", "2048")]
    assert {r["batch"] for r in got} == {"1"}  # --batch defaults to 1
    for r in got:  # the same numbers as `shapes` for each model
        report = api.analyze(layer_config(1, int(r["seq_len"]), model=r["model"]))
        for column in ("params", "flops", "matmul_flops_per_token", "weight_bytes", "peak_bytes"):
            assert int(r[column]) == getattr(report.totals, column), (r["model"], column)
        assert int(r["d_model"]) == report.config.d_model and int(r["d_ff"]) == report.config.d_ff


def test_sweep_over_activations_dtypes_and_rules(cli: Cli) -> None:
    args = ("sweep", "--seq-len", "16", "--d-model", "96", "-a", "relu,swiglu", "--dtype", "float32,bfloat16", "--d-ff", "4x,glu")
    code, out, err = cli(*args, "-f", "csv", "-c", "params,weight_bytes")
    assert code == 0, err
    got = rows(out)
    assert list(got[0]) == ["d_ff_given", "activation", "dtype", "params", "weight_bytes"]
    assert len(got) == 8
    for r in got:
        report = api.analyze(layer_config(1, 16, 96, d_ff=r["d_ff_given"], activation=r["activation"], dtype=r["dtype"]))
        assert int(r["params"]) == report.totals.params and int(r["weight_bytes"]) == report.totals.weight_bytes


def test_sweep_jsonl_keys_unchanged_without_a_swept_name(cli: Cli) -> None:
    _, out, _ = cli("sweep", "--batch", "1", "--seq-len", "8", "--d-model", "8", "-f", "jsonl")
    keys = list(json.loads(out.splitlines()[0]))
    assert keys == ["batch", "seq_len", "d_model", "d_ff", "params", "flops", "matmul_flops_per_token", "weight_bytes", "peak_bytes"]


def test_sweep_a_bad_model_in_a_list_writes_nothing(cli: Cli) -> None:
    code, out, err = cli("sweep", "--model", "bert-base,gpt3", "--seq-len", "8", "-f", "csv")
    assert code == 2 and out == "" and "gpt3" in err


@pytest.mark.parametrize("layers", [1, 3])
@pytest.mark.parametrize("options", [TrainingOptions(), TrainingOptions(recompute="full", optimizer="sgd", dropout=True)])
def test_train_model_totals_by_hand(layers: int, options: TrainingOptions) -> None:
    report = train(layer_config(2, 8, 16, d_ff="32", layers=layers), options)
    t, m = report.totals, report.model
    assert m is not None and m.layers == layers
    assert m.params == layers * report.forward.totals.params
    for name in ("forward_flops", "backward_flops", "step_flops", "step_matmul_flops", "weight_bytes", "gradient_bytes",
                 "optimizer_state_bytes", "master_weight_bytes", "saved_activation_bytes"):  # fmt: skip
        assert getattr(m, name) == layers * getattr(t, name), name
    persistent = t.weight_bytes + t.gradient_bytes + t.optimizer_state_bytes + t.master_weight_bytes
    assert m.backward_transient_bytes == t.backward_transient_bytes
    # Full recompute regenerates, for the layer's backward, the ReLU output (2·8·32 float32) and the
    # dropout mask (2·8·16 booleans) that no recompute would have saved; only the input is saved.
    assert t.recomputed_bytes == m.recomputed_bytes == (2 * 8 * 32 * 4 + 2 * 8 * 16 if options.recompute == "full" else 0)
    assert m.peak_bytes == layers * (persistent + t.saved_activation_bytes) + t.recomputed_bytes + t.backward_transient_bytes
    if layers == 1:
        assert m.peak_bytes == t.peak_bytes


def test_train_json_and_csv_carry_the_model(cli: Cli) -> None:
    _, out, _ = cli("train", "2", "8", "16", "-L", "4", "-f", "json")
    doc = json.loads(out)
    assert doc["model"]["layers"] == 4 and doc["model"]["step_flops"] == 4 * doc["totals"]["step_flops"]
    _, text, _ = cli("train", "2", "8", "16", "-L", "4", "-f", "csv")
    got = rows(text)
    assert {r["section"] for r in got} == {"backward", "flops", "memory", "model"}
    assert list(got[0])[:6] == ["stage", "kind", "output_shape", "macs", "elementwise_flops", "flops"]
    memory = {r["stage"]: int(r["bytes"]) for r in got if r["section"] == "memory"}
    model = {r["stage"]: int(r["bytes"] or r["flops"]) for r in got if r["section"] == "model"}
    assert memory["peak"] == doc["totals"]["peak_bytes"] and model["peak"] == doc["model"]["peak_bytes"]
    assert model["step"] == doc["model"]["step_flops"]
