"""The command line, driven through its real entry point: JSON and CSV parsed and checked,
exit codes, and one clean line on stderr for every bad input."""

from __future__ import annotations

import csv
import io
import json

import pytest
from helpers import DATA, Run

from ffn_calc.model.forward import analyze


def test_shapes_json_is_exact(cli: Run) -> None:
    code, out, err = cli("shapes", "3", "6", "8", "--d-ff", "32", "--format", "json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["schema"] == "ffn-calc/shapes/1"
    assert doc["config"]["d_ff"] == 32 and doc["config"]["tokens"] == 18
    assert [s["name"] for s in doc["stages"]] == ["input", "linear1", "activation", "linear2"]
    assert [s["output_shape"] for s in doc["stages"]] == [[3, 6, 8], [3, 6, 32], [3, 6, 32], [3, 6, 8]]
    assert [s["flops"] for s in doc["stages"]] == [0, 9792, 576, 9360]
    assert [s["macs"] for s in doc["stages"]] == [0, 4608, 0, 4608]
    assert [s["params"] for s in doc["stages"]] == [0, 288, 0, 264]
    assert [s["output_bytes"] for s in doc["stages"]] == [576, 2304, 2304, 576]
    totals = doc["totals"]
    assert (totals["params"], totals["flops"], totals["macs"]) == (552, 19728, 9216)
    assert (totals["weight_bytes"], totals["peak_bytes"]) == (2208, 7392)
    assert totals["matmul_flops_per_token"] == 1024
    assert all(isinstance(v, int) for v in totals.values())
    assert doc["conventions"]["flops_per_mac"] == 2


def test_paper_config_through_the_cli(cli: Run) -> None:
    code, out, _ = cli("shapes", "1", "1", "512", "-f", "json")
    assert code == 0
    assert json.loads(out)["totals"]["params"] == 2_099_712


def test_d_ff_multiplier_and_rule_in_json(cli: Run) -> None:
    _, out, _ = cli("shapes", "2", "3", "8", "--d-ff", "2.5x", "-f", "json")
    cfg = json.loads(out)["config"]
    assert cfg["d_ff"] == 20 and "2.5 × d_model" in cfg["d_ff_rule"]


def test_big_sizes_stay_exact_integers(cli: Run) -> None:
    _, out, _ = cli("shapes", "4096", "131072", "65536", "-f", "json")
    totals = json.loads(out)["totals"]
    n, d = 4096 * 131072, 65536
    assert totals["macs"] == 2 * n * d * 4 * d  # 2^64 and beyond: no float rounding
    assert totals["macs"] > 2**63


def test_shapes_csv(cli: Run) -> None:
    code, out, err = cli("shapes", "3", "6", "8", "--d-ff", "32", "--norm", "post", "-f", "csv")
    assert code == 0 and err == ""
    rows = list(csv.DictReader(io.StringIO(out)))
    assert [r["stage"] for r in rows] == ["input", "linear1", "activation", "linear2", "residual", "layernorm", "total"]
    assert rows[1]["output_shape"] == "3x6x32"
    total = rows[-1]
    assert int(total["params"]) == 552 + 16
    assert int(total["flops"]) == sum(int(r["flops"]) for r in rows[:-1])
    assert int(total["peak_bytes"]) > int(total["weight_bytes"])


def test_table_output_has_no_escape_codes(cli: Run) -> None:
    code, out, err = cli("shapes", "3", "6", "8", "--d-ff", "32")
    assert code == 0 and err == ""
    assert "\x1b[" not in out
    assert "(3, 6, 32)" in out and "19,728" in out


def test_verify_json(cli: Run) -> None:
    code, out, err = cli("verify", "3", "6", "8", "--d-ff", "32", "--activation", "gelu", "--norm", "pre", "-f", "json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["schema"] == "ffn-calc/verify/1"
    assert doc["ok"] is True and doc["computed_dtype"] == "float32"
    assert all(c["ok"] for c in doc["checks"])
    assert doc["prediction"]["totals"]["params"] == 552 + 16
    assert doc["gflops_per_s"] > 0


def test_verify_exit_status_is_1_on_a_mismatch(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import replace

    import ffn_calc.verifier.run as v

    real = analyze
    monkeypatch.setattr(v, "analyze", lambda cfg: real(replace(cfg, d_ff=cfg.d_ff * 2)))
    code, out, _ = cli("verify", "3", "6", "8", "--d-ff", "32", "-f", "json")
    assert code == 1
    assert json.loads(out)["ok"] is False


def test_verify_in_bfloat16_stores_bfloat16(cli: Run) -> None:
    code, out, _ = cli("verify", "2", "4", "8", "--dtype", "bfloat16", "-f", "json")
    doc = json.loads(out)
    assert code == 0 and doc["config"]["dtype"] == "bfloat16" and doc["computed_dtype"] == "bfloat16"
    assert doc["dtype_note"] == "" and doc["config"]["dtype_bytes"] == 2


BAD = [
    (["shapes", "0", "6", "8"], "BATCH"),
    (["shapes", "-3", "6", "8"], "BATCH"),
    (["shapes", "3", "0", "8"], "SEQ_LEN"),
    (["shapes", "3", "6", "eight"], "D_MODEL"),
    (["shapes", "3", "6", "8.5"], "D_MODEL"),
    (["shapes", "3", "6", ""], "D_MODEL"),
    (["shapes", "3", "6", "1" + "0" * 30], "D_MODEL"),
    (["shapes", "3", "6", "8", "--d-ff", "2.7x"], "--d-ff"),
    (["shapes", "3", "6", "8", "--d-ff", "0"], "--d-ff"),
    (["shapes", "3", "6", "8", "--d-ff", "1/0x"], "--d-ff"),
    (["shapes", "3", "6", "8", "--d-ff", "wide"], "--d-ff"),
    (["shapes", "3", "6", "8", "--activation", "tanh"], "--activation"),
    (["shapes", "3", "6", "8", "--norm", "both"], "--norm"),
    (["shapes", "3", "6", "8", "--dtype", "float8"], "--dtype"),
    (["shapes", "3", "6", "8", "--format", "xml"], "--format"),
    (["shapes", "3", "6"], "D_MODEL"),
    (["shapes", "3", "6", "8", "--frobnicate"], "--frobnicate"),
    (["verify", "3", "6", "8", "--seed", "-1"], "--seed"),
    (["verify", "65536", "65536", "65536"], "verify cannot run"),
    (["nonsense"], "nonsense"),
]


@pytest.mark.parametrize(("args", "names"), BAD)
def test_bad_input_is_one_line_on_stderr(cli: Run, args: list[str], names: str) -> None:
    code, out, err = cli(*args)
    assert code == 2
    assert out == ""
    assert err.count("\n") == 1 and err.startswith("ffn-calc: error: ")
    assert names in err
    assert "Traceback" not in err


def test_python_m_and_console_entry_agree(cli_proc: Run) -> None:
    """The real process: `python -m ffn_calc` prints clean JSON and a one-line error."""
    ok = cli_proc("shapes", "3", "6", "8", "--d-ff", "32", "-f", "json")
    assert ok.code == 0 and ok.err == ""
    assert json.loads(ok.out)["totals"]["params"] == 552
    bad = cli_proc("shapes", "3", "6", "8", "--d-ff", "2.7x")
    assert bad.code == 2 and bad.out == ""
    assert bad.err.count("\n") == 1 and "--d-ff" in bad.err


def test_a_caller_keeps_its_garbage_collector(cli: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    """main() with arguments from a caller (a test, a script, a notebook) leaves the caller's garbage
    collector and exit hooks alone: whatever the command line does for its own process is its own."""
    import atexit
    import gc

    registered: list[object] = []
    disabled: list[bool] = []
    monkeypatch.setattr(atexit, "register", registered.append)
    monkeypatch.setattr(gc, "disable", lambda: disabled.append(True))  # never this test process's collector
    assert cli("shapes", "3", "6", "8", "-f", "json").code == 0
    assert cli("verify", "2", "2", "4", "-f", "json").code == 0
    assert registered == [] and disabled == []


def test_every_command_has_help_with_an_example(cli: Run) -> None:
    for command in ("shapes", "verify", "explain", "models", "sweep", "train", "roofline"):
        code, out, _ = cli(command, "--help")
        assert code == 0
        assert f"ffn-calc {command} " in out and "Example" in out
        if command != "models":
            assert "2 × MACs" in out  # the counting convention is stated in --help


def test_model_preset_through_the_cli(cli: Run) -> None:
    code, out, err = cli("shapes", "1", "2048", "--model", "mixtral-8x7b", "-f", "json")
    assert code == 0 and err == ""
    doc = json.loads(out)
    assert doc["config"]["experts"] == 8 and doc["config"]["top_k"] == 2
    assert doc["totals"]["params"] == 1_409_318_912
    assert doc["totals"]["active_expert_params"] == 352_321_536
    assert doc["model"]["params"] == 32 * 1_409_318_912
    assert any("Mixtral" in line for line in doc["config"]["origin"])


def test_config_file_through_the_cli(cli: Run) -> None:
    path = str(DATA / "llama-3-8b.config.json")
    code, out, _ = cli("shapes", "1", "8", "--config", path, "-f", "json")
    assert code == 0
    doc = json.loads(out)
    assert doc["totals"]["params"] == 176_160_768
    assert any("ignored" in line and "vocab_size" in line for line in doc["config"]["origin"])


def test_models_lists_every_preset(cli: Run) -> None:
    from ffn_calc.catalogue.presets import PRESETS

    code, out, _ = cli("models", "-f", "json")
    assert code == 0
    doc = json.loads(out)
    assert [m["name"] for m in doc["models"]] == list(PRESETS)
    by_name = {m["name"]: m for m in doc["models"]}
    assert by_name["bert-base"]["params_per_layer"] == 4_722_432
    assert all(m["source"] for m in doc["models"])


def test_explain_json(cli: Run) -> None:
    code, out, _ = cli("explain", "1", "512", "--model", "bert-base", "-f", "json")
    assert code == 0
    doc = json.loads(out)
    first = doc["formulas"][0]
    assert first["substituted"] == "2·768·3072 + (3072 + 768)" and first["value"] == 4_722_432
    assert len(doc["facts"]) >= 9 and doc["diagram"]


def test_glu_matched_d_ff_through_the_cli(cli: Run) -> None:
    code, out, _ = cli(
        "shapes", "1", "1", "4096", "-a", "swiglu", "--no-bias", "--d-ff", "glu", "--multiple-of", "1024",
        "--ffn-dim-multiplier", "1.3", "-f", "json",
    )  # fmt: skip
    assert code == 0
    cfg = json.loads(out)["config"]
    assert cfg["d_ff"] == 14336 and "14198" in cfg["d_ff_rule"]


MORE_BAD = [
    (["shapes", "1", "1", "--model", "gpt5"], "--model"),
    (["shapes", "1", "1"], "D_MODEL"),
    (["shapes", "1", "1", "8", "--experts", "4"], "--top-k"),
    (["shapes", "1", "1", "8", "--top-k", "2"], "--top-k"),
    (["shapes", "1", "1", "8", "--experts", "4", "--top-k", "5"], "--top-k"),
    (["shapes", "1", "1", "8", "--experts", "0", "--top-k", "1"], "--experts"),
    (["shapes", "1", "1", "8", "--fused"], "--fused"),
    (["shapes", "1", "1", "8", "--multiple-of", "64"], "--multiple-of"),
    (["shapes", "1", "1", "8", "--experts", "2", "--top-k", "1", "--capacity-factor", "-1"], "--capacity-factor"),
    (["shapes", "1", "1", "8", "--experts", "2", "--top-k", "1", "--capacity-factor", "lots"], "--capacity-factor"),
    (["shapes", "1", "1", "8", "--layers", "0"], "--layers"),
    (["shapes", "1", "1", "--config", "/nonexistent/config.json"], "--config"),
    (["explain", "1", "1", "--model", "nope"], "--model"),
]


@pytest.mark.parametrize(("args", "names"), MORE_BAD)
def test_more_bad_input(cli: Run, args: list[str], names: str) -> None:
    test_bad_input_is_one_line_on_stderr(cli, args, names)
