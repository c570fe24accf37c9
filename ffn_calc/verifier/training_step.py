"""`verify --backward`: the backward pass with explicit matmuls, checked op by op against
`train`'s prediction, and its gradients against finite differences."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from ffn_calc.model.layer import FFNConfig
from ffn_calc.verifier.compare import _grouped, conv_flops
from ffn_calc.verifier.forward import NORM_PARAMS, Params, make_params
from ffn_calc.verifier.report import Check


def backward_checks(cfg: FFNConfig, p: Params, x: np.ndarray, rng: np.random.Generator, input_grad: bool = True) -> list[Check]:
    """The backward pass with explicit matmuls, checked op by op against `train`'s prediction,
    and its gradients against finite differences on a small float64 layer of the same kind.
    Without `input_grad` the layer's input needs no gradient, as `train --no-input-grad`."""
    from ffn_calc.model.training import TrainingOptions, train
    from ffn_calc.verifier.backward import BackwardRecorder, forward_backward, gradient_check

    checks: list[Check] = []
    predicted = train(cfg, TrainingOptions(input_grad=input_grad))
    rec = BackwardRecorder()
    dout = rng.standard_normal(x.shape).astype(x.dtype)
    _, grads = forward_backward(cfg, p, x, dout, rec, input_grad)
    checks.append(Check("backward", "input gradient computed", input_grad, "x" in grads, ("x" in grads) == input_grad))
    for name, array in p.items():
        checks.append(Check("backward", f"d{name} shape", tuple(array.shape), tuple(grads[name].shape), grads[name].shape == array.shape))
    observed_total = 0
    for op in predicted.backward:
        key = (op.stage, op.kind)
        products = rec.matmuls.get(key, [])
        flops = conv_flops(products) + rec.elementwise.get(key, 0)
        observed_total += flops
        if op.matmul:
            # The experts' products split the rows among them: M for an input gradient, the
            # middle dimension (the rows summed over) for a weight gradient.
            grouped = _grouped(products, axis=1 if op.kind == "weight-grad" else 0)
            checks.append(Check("backward", f"{op.stage} {op.kind} (M, K, N)", op.matmul, grouped, grouped == op.matmul))
        checks.append(Check("backward", f"{op.stage} {op.kind} FLOPs", op.flops, flops, flops == op.flops))
    t = predicted.totals
    checks.append(Check("backward", "backward FLOPs", t.backward_flops, observed_total, observed_total == t.backward_flops))
    observed_matmul = conv_flops([m for products in rec.matmuls.values() for m in products])
    checks.append(Check("backward", "backward matmul FLOPs (every product that ran)", t.backward_matmul_flops, observed_matmul,
                        observed_matmul == t.backward_matmul_flops))  # fmt: skip
    ran = observed_matmul + sum(rec.elementwise.values())  # all work recorded, predicted or not
    checks.append(Check("backward", "backward FLOPs (all work that ran)", t.backward_flops, ran, ran == t.backward_flops))
    small = replace(cfg, batch=2, seq_len=3, d_model=min(cfg.d_model, 5), d_ff=min(cfg.d_ff, 7), dtype="float64")
    small_p = make_params(np.random.default_rng(1), small, np.float64)
    if small.norm != "none":  # exercise γ (and LayerNorm's β) away from 1 and 0 too
        for seed, name in enumerate(NORM_PARAMS[small.norm_type], start=2):
            small_p[name] += 0.1 * np.random.default_rng(seed).standard_normal(small.d_model)
    small_x = np.random.default_rng(4).standard_normal((2, 3, small.d_model))
    err = gradient_check(small, small_p, small_x, np.random.default_rng(5).standard_normal(small_x.shape), input_grad=input_grad)
    # 1e-5: NumPy has no erf, and the approximation used (error < 1.5e-7) limits GELU to about 1e-6.
    checks.append(Check("backward", "gradients = finite differences (float64, 2 × 3 tokens)", "≤ 1e-5", f"{err:.1e}", err <= 1e-5, "tolerance"))
    return checks
