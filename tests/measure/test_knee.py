"""The measured knee (ffn_calc/measure/knee.py) on synthetic timings: exact values, the sweep's
rows, and the construction on the roofline's own bounds giving back its predicted crossover."""

from __future__ import annotations

from dataclasses import replace

import pytest

from ffn_calc.measure.knee import NEVER_SWEEP, measured_knee, sweep_rows
from ffn_calc.model.layer import make_config
from ffn_calc.model.roofline import GPU, roofline


def test_the_knee_is_where_the_flat_line_meets_the_proportional_one() -> None:
    # flat at 2 s up to M = 4, then 0.5 s a row: the lines meet at 2 / 0.5 = 4
    k = measured_knee([(16, 8.0), (1, 2.0), (2, 2.0), (8, 4.0)])
    assert (k.m, k.flat_m, k.flat_seconds, k.last_m, k.last_seconds, k.inside) == (4.0, 1, 2.0, 16, 8.0, True)


def test_a_knee_outside_the_sweep_says_so() -> None:
    below = measured_knee([(2, 1.0), (4, 100.0)])
    assert below.m == pytest.approx(0.04) and not below.inside
    flat = measured_knee([(1, 3.0), (64, 3.0)])  # time never rose: the knee is at or past the last M
    assert flat.m == 64.0 and flat.inside
    assert measured_knee([(1, 3.0), (64, 1.5)]).m == 128.0


def test_one_m_has_no_knee() -> None:
    assert measured_knee([(8, 1.0)]).m is None


@pytest.mark.parametrize(
    ("predicted", "rows"),
    [
        (46, (4, 8, 16, 32, 64, 128, 256, 512)),
        (32, (4, 8, 16, 32, 64, 128, 256)),
        (20, (2, 4, 8, 16, 32, 64, 128, 256)),
        (1, (1, 2, 4, 8)),
        (None, tuple(2**e for e in range(9))),
    ],
)
def test_the_sweep_spans_three_octaves_each_side(predicted: int | None, rows: tuple[int, ...]) -> None:
    assert sweep_rows(predicted) == rows
    assert rows[-1] <= NEVER_SWEEP * 2


def test_the_sweep_keeps_to_the_rows_that_fit() -> None:
    assert sweep_rows(46, most=100) == (4, 8, 16, 32, 64)
    assert sweep_rows(46, most=2) == (1,)


@pytest.mark.parametrize(("d_model", "dtype"), [(4096, "float32"), (1024, "float64"), (512, "bfloat16")])
def test_on_the_roofline_own_times_the_knee_is_its_crossover(d_model: int, dtype: str) -> None:
    """Timings that follow the bound exactly put the knee at the predicted crossover, short of it
    by the activations' share that the flat line leaves out, M·(K + N) / (K·N), and the ceiling."""
    gpu = GPU("test", {dtype: 0.2}, 10.0, "synthetic")
    cfg = make_config(1, 1, d_model, dtype=dtype)
    predicted = roofline(cfg, gpu).phases[-1].gemms[0].ridge_tokens
    times = [(m, roofline(replace(cfg, batch=m), gpu).phases[-1].gemms[0].seconds) for m in sweep_rows(predicted)]
    knee = measured_knee(times)
    assert predicted is not None and knee.m is not None and knee.inside
    k, n = d_model, 4 * d_model
    assert predicted * (1 - predicted * (k + n) / (k * n)) - 1 <= knee.m <= predicted
