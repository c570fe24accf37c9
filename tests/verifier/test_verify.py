"""The NumPy verifier: it must pass on correct predictions and fail on wrong ones."""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction
from typing import Any

import numpy as np
import pytest
from helpers import examples
from hypothesis import given, settings
from hypothesis import strategies as st

import ffn_calc
from ffn_calc.errors import VerifyRefused
from ffn_calc.model.forward import analyze, chunked_peak
from ffn_calc.model.layer import FFNConfig, make_config
from ffn_calc.verifier import arrays, memory, recorder
from ffn_calc.verifier import forward as numpy_ffn
from ffn_calc.verifier import run as verify_module
from ffn_calc.verifier.forward import conv1d
from ffn_calc.verifier.kernels import KERNELS, activation_values, erf
from ffn_calc.verifier.recorder import Recorder
from ffn_calc.verifier.report import VerifyReport
from ffn_calc.verifier.run import verify

ACTIVATIONS = ["relu", "gelu", "gelu_tanh", "silu"]
NORMS = ["none", "pre", "post"]


def failed(report: VerifyReport) -> list[str]:
    return [c.name for c in report.checks if not c.ok]


@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("norm", NORMS)
def test_example_verifies_in_every_mode(activation: str, norm: str) -> None:
    report = verify(make_config(3, 6, 8, "32", activation=activation, norm=norm))
    assert failed(report) == []
    names = {c.name for c in report.checks}
    assert "Conv1d(k=1) form = linear form" in names
    assert "position-wise: permuted input → permuted output" in names


BERT_GELU = make_config(1, 512, 768, 3072, activation="gelu")


@pytest.fixture(scope="module")
def bert_gelu_report() -> VerifyReport:
    """verify of BERT-base's FFN with its true prediction, run once for the module's checks of it."""
    return ffn_calc.verify(BERT_GELU)


# Every activation under every norm placement; the fast loop runs one placement per activation
# (GELU without a norm: the layer of bert_gelu_report, shared with the 3%-off checks below).
@pytest.mark.parametrize(
    ("norm", "activation"),
    [pytest.param(n, a, marks=() if (i + 2) % len(NORMS) == j else pytest.mark.slow) for i, a in enumerate(ACTIVATIONS) for j, n in enumerate(NORMS)],
)
def test_bert_base_sized_layer_verifies(activation: str, norm: str, request: pytest.FixtureRequest) -> None:
    """1 × 512 × 768, d_ff 3072 (33 MB): the measured peak is at least the prediction and within 2% of it."""
    cfg = make_config(1, 512, 768, "3072", activation=activation, norm=norm)
    report = request.getfixturevalue("bert_gelu_report") if cfg == BERT_GELU else verify(cfg)
    assert failed(report) == []
    peak = next(c for c in report.checks if c.name.startswith("peak bytes"))
    assert isinstance(peak.observed, int) and isinstance(peak.predicted, int)
    assert peak.predicted <= peak.observed <= 1.02 * peak.predicted
    assert report.gflops_per_s > 0


# A tenth of the profile: every example runs the NumPy forward pass.
@settings(max_examples=examples(0.1))
@given(
    b=st.integers(1, 4), s=st.integers(1, 9), d=st.integers(1, 24), f=st.integers(1, 64), bias=st.booleans(),
    act=st.sampled_from(ACTIVATIONS), norm=st.sampled_from(NORMS), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_observed_equals_predicted_on_random_shapes(b: int, s: int, d: int, f: int, bias: bool, act: str, norm: str, seed: int) -> None:
    cfg = FFNConfig(b, s, d, f, activation=act, bias=bias, norm=norm)
    report = verify(cfg, seed=seed)
    assert failed(report) == []
    pred = analyze(cfg)
    exact = {c.name: c for c in report.checks if c.kind == "exact"}
    assert exact["parameters"].observed == pred.totals.params
    assert exact["FLOPs"].observed == pred.totals.flops
    assert exact["MACs"].observed == pred.totals.macs
    for stage in pred.stages:
        assert exact[f"{stage.name} output shape"].observed == stage.output_shape


def test_a_wrong_prediction_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    """If the core predicted d_ff one too large, shapes, params, FLOPs and bytes must all fail."""
    real = analyze
    monkeypatch.setattr(verify_module, "analyze", lambda cfg: real(replace(cfg, d_ff=cfg.d_ff + 1)))
    report = verify(make_config(3, 6, 8, "32"))
    assert not report.ok
    bad = set(failed(report))
    assert {"linear1 output shape", "W1 parameters", "b1 bytes", "FLOPs", "MACs", "parameters"} <= bad


def test_a_wrong_bias_prediction_is_caught(monkeypatch: pytest.MonkeyPatch) -> None:
    real = analyze
    monkeypatch.setattr(verify_module, "analyze", lambda cfg: real(replace(cfg, bias=False)))
    report = verify(make_config(3, 6, 8, "32"))
    assert {"weight tensors", "parameters", "linear1 FLOPs"} <= set(failed(report))


def test_relu_zero_fraction_is_reported() -> None:
    report = verify(make_config(2, 16, 32))
    zeros = next(c for c in report.checks if c.name == "fraction of zeros after ReLU")
    assert zeros.kind == "info"
    assert 0.3 < float(str(zeros.observed)) < 0.7  # zero-mean pre-activations: about half


@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_runs_in_the_dtype_numpy_has(dtype: str) -> None:
    report = verify(make_config(2, 8, 16, activation="gelu", norm="post", dtype=dtype))
    assert report.computed_dtype == dtype and report.dtype_note == ""
    assert failed(report) == []
    w1 = next(c for c in report.checks if c.name == "W1 bytes")
    assert w1.observed == 16 * 64 * {"float16": 2, "float64": 8}[dtype]


@pytest.mark.parametrize("dtype", ["int8"])  # bfloat16 and float8: test_low_precision.py
def test_says_which_dtype_it_computed_in(dtype: str) -> None:
    report = verify(make_config(2, 8, 16, dtype=dtype))
    assert report.computed_dtype == "float32"
    assert "float32" in report.dtype_note
    assert report.prediction.config.dtype == "float32"
    assert failed(report) == []


def test_refuses_before_allocating_when_it_would_not_fit() -> None:
    with pytest.raises(VerifyRefused, match="GiB"):
        verify(make_config(64, 8192, 8192), max_memory_bytes=2**30)


def test_refusal_names_the_size_needed() -> None:
    cfg = make_config(8, 1024, 1024)
    floor = memory.required_bytes(analyze(cfg), 1)  # one token at a time
    assert floor >= analyze(cfg).totals.weight_bytes
    with pytest.raises(VerifyRefused) as e:
        verify(cfg, max_memory_bytes=floor - 1)
    assert f"{floor / 2**20:.2f} MiB" in str(e.value)
    # One byte more and it runs, in chunks of one token.
    assert memory.plan_chunks(analyze(cfg), floor)[0] == 1


def test_conv1d_matches_a_direct_loop_for_wider_kernels() -> None:
    """The Conv1d used for the kernel-size-1 check is a real convolution, checked at k = 3."""
    rng = np.random.default_rng(1)
    x = rng.standard_normal((2, 4, 9))
    w = rng.standard_normal((5, 4, 3))
    b = rng.standard_normal(5)
    out = conv1d(x, w, b)
    expected = np.zeros((2, 5, 7))
    for bi in range(2):
        for o in range(5):
            for t in range(7):
                expected[bi, o, t] = b[o] + sum(w[o, i, k] * x[bi, i, t + k] for i in range(4) for k in range(3))
    np.testing.assert_allclose(out, expected, rtol=1e-12)


def test_erf_is_within_its_stated_error() -> None:
    xs = np.linspace(-6, 6, 10001)
    ours = erf(xs)
    ref = np.array([math.erf(v) for v in xs])
    assert np.max(np.abs(ours - ref)) < 1.5e-7


@pytest.mark.parametrize(
    ("options", "limit_mib"),
    [
        ({}, 120),
        pytest.param({"activation": "swiglu", "norm": "pre"}, 150, marks=pytest.mark.slow),
        pytest.param({"activation": "swiglu", "bias": False, "experts": 4, "top_k": 2}, 300, marks=pytest.mark.slow),
    ],
)
def test_verify_runs_in_chunks_under_the_limit(options: dict[str, object], limit_mib: int) -> None:
    """4 × 1024 tokens at d_model 1024: the whole pass needs more than the limit, so it runs in
    chunks, the chunked peak prediction holds, and the measured peak stays under the limit."""
    cfg = make_config(4, 1024, 1024, **options)  # type: ignore[arg-type]
    limit = limit_mib * 2**20
    assert memory.required_bytes(analyze(cfg)) > limit
    seen: list[tuple[int, int]] = []
    report = verify(cfg, max_memory_bytes=limit, progress=lambda done, total, what: seen.append((done, total)) if what == "tokens" else None)
    assert failed(report) == []
    assert 0 < report.chunk_tokens < cfg.tokens and report.chunks == -(-cfg.tokens // report.chunk_tokens)
    peak = next(c for c in report.checks if c.name.startswith("peak bytes"))
    assert isinstance(peak.observed, int) and peak.observed <= limit
    assert peak.predicted == chunked_peak(cfg, report.chunk_tokens)
    totals = {c.name: c for c in report.checks if c.group == "totals"}
    assert totals["FLOPs"].observed == analyze(cfg).totals.flops  # every chunk counted, once
    assert seen[-1] == (cfg.tokens, cfg.tokens) and len(seen) == report.chunks


def test_chunking_is_refused_for_capacity_routing() -> None:
    cfg = make_config(4, 1024, 1024, experts=4, top_k=2, capacity_factor=1.0)
    with pytest.raises(VerifyRefused, match="capacity"):
        verify(cfg, max_memory_bytes=200 * 2**20)


def test_refused_when_one_token_does_not_fit() -> None:
    with pytest.raises(VerifyRefused, match="one token at a time"):
        verify(make_config(4, 1024, 1024), max_memory_bytes=10 * 2**20)


# --- elementwise blocks on threads ----------------------------------------------------------


@given(total=st.integers(0, 500), step=st.integers(1, 60), threads=st.integers(1, 4))
def test_each_block_covers_every_index_once(total: int, step: int, threads: int) -> None:
    seen: list[tuple[int, int]] = []
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(arrays, "THREADS", threads)
        arrays.each_block(total, step, lambda i, j: seen.append((i, j)))
    assert all(0 < j - i <= step for i, j in seen)
    assert sorted(k for i, j in seen for k in range(i, j)) == list(range(total))


def test_each_block_raises_what_a_worker_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(arrays, "THREADS", 2)

    def fn(i: int, j: int) -> None:
        if i >= 50:  # a block of the second run: a worker thread's
            raise MemoryError("worker")

    with pytest.raises(MemoryError, match="worker"):
        arrays.each_block(100, 10, fn)


LAYERS = [{"activation": act, "norm": norm} for act in ACTIVATIONS for norm in NORMS] + [
    {"activation": "swiglu", "bias": False},
    {"activation": "geglu", "fused": True},
    {"activation": "swiglu", "experts": 4, "top_k": 2, "shared_experts": 1},
    {"activation": "gelu", "experts": 4, "top_k": 1, "capacity_factor": 1.0},
]


# The fast loop: each activation under one norm placement and every other form, in float32 and
# float16 by turns; the full run every placement in both.
FAST_THREADED = [o for o in LAYERS if "norm" not in o or NORMS.index(str(o["norm"])) == ACTIVATIONS.index(str(o["activation"])) % len(NORMS)]
THREADED = [
    pytest.param(dtype, o, marks=() if o in FAST_THREADED and FAST_THREADED.index(o) % 2 == i else pytest.mark.slow)
    for i, dtype in enumerate(["float32", "float16"])
    for o in LAYERS
]


@pytest.mark.parametrize(("dtype", "options"), THREADED, ids=lambda v: v if isinstance(v, str) else ",".join(f"{k}={v}" for k, v in v.items()))
def test_threads_give_the_same_bits_as_one_thread(monkeypatch: pytest.MonkeyPatch, options: dict[str, object], dtype: str) -> None:
    """Tensors of several blocks (64 tokens × 1024), so that the threads really split them."""
    cfg = make_config(2, 32, 256, "1024", dtype=dtype, **options)  # type: ignore[arg-type]
    np_dtype = verify_module.NUMPY_DTYPES[dtype]
    rng = np.random.default_rng(7)
    p = numpy_ffn.make_params(rng, cfg, np_dtype)
    x = arrays.random_array(rng, (2, 32, 256), np_dtype, 1.0)
    outputs = []
    for threads in (1, 3):
        monkeypatch.setattr(arrays, "THREADS", threads)
        rec = Recorder()
        outputs.append((numpy_ffn.forward(rec, cfg, p, x), {k: v.elementwise_flops for k, v in rec.stages.items()}))
    (serial, serial_flops), (threaded, threaded_flops) = outputs
    assert threaded.tobytes() == serial.tobytes()
    assert threaded_flops == serial_flops


@pytest.mark.parametrize("kind", ACTIVATIONS)
def test_in_place_activations_match_their_formulas(kind: str) -> None:
    h = np.linspace(-6.0, 6.0, 1201)
    exact = np.array([KERNELS[kind].reference(float(v)) for v in h])
    # GELU = 0.5·h·(1 + erf(h/√2)) inherits erf's stated error (1.5e-7), scaled by 0.5·|h|.
    bound = 0.5 * np.abs(h) * 1.5e-7 if kind == "gelu" else 1e-14 * np.maximum(1.0, np.abs(h))
    assert np.all(np.abs(activation_values(kind, h) - exact) <= bound)


# --- float16 products through float32 BLAS ------------------------------------------------------


@given(m=st.integers(1, 70), k=st.integers(1, 70), n=st.integers(1, 70), block=st.sampled_from([64, 256, 4096, 1 << 21]))
def test_half_matmul_is_the_float32_product_rounded_once(m: int, k: int, n: int, block: int) -> None:
    rng = np.random.default_rng(m * 10_000 + k * 100 + n)
    a = rng.standard_normal((m, k)).astype(np.float16)
    b = rng.standard_normal((k, n)).astype(np.float16)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(arrays, "NARROW_BLOCK_BYTES", block)  # small blocks: many of them
        rows, depth, cols = arrays._narrow_blocks(m, k, n)
        got = arrays.matmul(a, b)
    assert got.dtype == np.float16 and got.shape == (m, n)
    exact = a.astype(np.float64) @ b.astype(np.float64)
    # float32 sums, then one rounding to float16: within half a float16 ulp plus float32's error.
    bound = np.abs(exact) * 2.0**-11 + k * 2.0**-23 * (np.abs(a).astype(np.float64) @ np.abs(b).astype(np.float64)) + 1e-7
    assert np.all(np.abs(got.astype(np.float64) - exact) <= bound)
    assert max(rows * depth, depth * cols, rows * cols) * 4 <= block  # every float32 tile within its budget


def test_no_elementwise_thread_survives_a_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import threading

    monkeypatch.setattr(arrays, "THREADS", 2)
    arrays.each_block(100, 10, lambda i, j: None)
    assert any(t.name.startswith("ffn-calc-elementwise") for t in threading.enumerate())
    pid = os.fork()
    if pid == 0:  # the child: no pool thread may have been copied (only the forking thread is)
        os._exit(0)
    os.waitpid(pid, 0)
    assert arrays._pool is None
    assert not any(t.name.startswith("ffn-calc-elementwise") for t in threading.enumerate())


def test_peak_check_bounds() -> None:
    """At least the prediction; at most 2% above it, or the absolute allowance (+ the routing's
    arrays) when that is larger; the workspace is set aside before judging."""
    from ffn_calc.verifier.compare import peak_check

    mib = 2**20
    assert peak_check("peak bytes", 100 * mib, 102 * mib, 0, 0, 320 << 10).ok
    assert not peak_check("peak bytes", 100 * mib, 102 * mib + 1, 0, 0, 320 << 10).ok
    assert not peak_check("peak bytes", 100 * mib, 100 * mib - 1, 0, 0, 320 << 10).ok
    assert peak_check("peak bytes", 100 * mib, 150 * mib, 50 * mib, 0, 320 << 10).observed == 100 * mib
    assert peak_check("peak bytes", mib, mib + (320 << 10), 0, 0, 320 << 10).ok  # small: the absolute allowance
    assert not peak_check("peak bytes", mib, mib + (320 << 10) + 1, 0, 0, 320 << 10).ok
    assert peak_check("peak bytes", mib, mib + (320 << 10) + 4096, 0, 4096, 320 << 10).ok  # + the routing's arrays


def test_progress_names_every_step_after_the_forward_pass() -> None:
    """The bar names drawing the weights, then counts the tokens, then names each later step as it starts."""
    calls: list[tuple[int, int, str]] = []
    verify(make_config(2, 8, 16, layers=2), backward=True, tp=2, progress=lambda *a: calls.append(a))
    assert calls[0] == (0, 0, "drawing the random weights and input")  # named before the pass, not 0 tokens
    assert calls[1] == (16, 16, "tokens")
    assert [what for _, total, what in calls[2:] if total == 0] == [
        "checks on 8 sampled tokens", "the model's 2 layers", "the training step", "2 tensor-parallel ranks",
    ]  # fmt: skip


# Hand-computed cases for bugs the mutation benchmark (benchmarks/mutants.py) once planted unseen.
def test_a_wrong_einsum_count_is_seen(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recorder, "_einsum_path_flops", lambda a, b: 0.0)
    report = ffn_calc.verify(make_config(2, 3, 8, 32))
    assert any("einsum_path" in c.name and not c.ok for c in report.checks)


@pytest.mark.parametrize("factor", [Fraction(103, 100), Fraction(97, 100)], ids=["3% high", "3% low"])
def test_a_peak_3_percent_off_fails_on_a_bert_size_layer(monkeypatch: pytest.MonkeyPatch, factor: Fraction, bert_gelu_report: VerifyReport) -> None:
    """BERT-base's FFN (512 tokens, GELU): a peak prediction 3% off either way fails, and the
    true one passes within 2%."""
    from ffn_calc.verifier import run

    real = analyze
    cfg = BERT_GELU
    peak = next(c for c in bert_gelu_report.checks if c.name.startswith("peak bytes"))
    assert peak.ok and isinstance(peak.observed, int) and isinstance(peak.predicted, int)
    assert peak.predicted <= peak.observed <= peak.predicted * 1.02

    def planted(cfg: Any) -> Any:
        report = real(cfg)
        totals = replace(report.totals, peak_bytes=int(report.totals.peak_bytes * factor))
        return replace(report, totals=totals)

    monkeypatch.setattr(run, "analyze", planted)
    report = ffn_calc.verify(cfg)
    assert [c.name for c in report.checks if not c.ok and c.name.startswith("peak bytes")]


def test_capacity_routing_drops_what_overflows() -> None:
    """Capacity buffers by hand: a token's pair beyond an expert's capacity adds nothing."""
    from ffn_calc.verifier.forward import forward, make_params
    from ffn_calc.verifier.recorder import Recorder

    cfg = make_config(1, 16, 8, 12, experts=2, top_k=1, capacity_factor=0.5, bias=False)
    p = make_params(np.random.default_rng(0), cfg, np.float64)
    x = np.random.default_rng(1).standard_normal((1, 16, 8))
    y = forward(Recorder(), cfg, p, x).reshape(16, 8)
    cap = cfg.expert_capacity
    assert cap == 4
    logits = x.reshape(16, 8) @ p["W_router"]
    chosen = logits.argmax(axis=1)  # top-1, ties to the lower index
    seen = [0, 0]
    for t in range(16):
        e = int(chosen[t])
        h = x[0, t] @ p["expert_W1"][e]
        expected = np.maximum(h, 0) @ p["expert_W2"][e] if seen[e] < cap else np.zeros(8)
        seen[e] += 1
        assert np.allclose(y[t], expected), t
    assert max(seen) > cap  # the case really drops pairs


@pytest.mark.parametrize("layer", ["dense", "glu", "moe", "mixed_stack"])
def test_every_standard_layer_verifies_forward_and_backward(layer: str, request: pytest.FixtureRequest) -> None:
    cfg: FFNConfig = request.getfixturevalue(layer)
    for backward in (False, True):
        report = verify(cfg, backward=backward)
        assert failed(report) == [] and report.ok, (layer, backward)
