"""Build every family of ffn_calc/catalogue/families.py with the real transformers code and record
what it counts, for tests/inputs/test_families.py to compare with ffn-calc (which needs no torch).

    pip install '.[crosscheck]'
    python scripts/crosscheck_families.py             # writes tests/data/families_golden.json and tests/data/families/*.json
    python scripts/crosscheck_families.py --defaults  # prints CODE_DEFAULTS for families.py

For each family: a small configuration (its configuration class with small sizes; what differs
from the class's defaults is written as tests/data/families/<model_type>.json, the file the
test reads through --config) builds the whole model on the CPU; the parameters of its FFN
blocks (the classes the entry names) are summed over the model, and one block of each kind is
run forward and backward under FlopCounterMode, which counts matmuls only (2·M·K·N). The
published configurations of the presets are built on the meta device, which holds no memory.
"""

from __future__ import annotations

import argparse
import inspect
import json
import sys
from pathlib import Path
from typing import Any

import torch
import transformers
from torch import nn
from torch.utils.flop_counter import FlopCounterMode
from transformers import CONFIG_MAPPING

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from ffn_calc.catalogue.families import FAMILIES, TRANSFORMERS, Family  # noqa: E402

GOLDEN = ROOT / "tests" / "data" / "families_golden.json"
CONFIGS = ROOT / "tests" / "data" / "families"
BATCH, SEQ = 2, 3  # the block's input (BATCH, SEQ, d_model)
D, FF, MOE_FF, EXPERTS, TOP_K, LAYERS = 64, 128, 32, 4, 2, 4

# Attention and vocabulary sizes set small wherever the configuration class has the field.
SMALL = {
    "vocab_size": 256, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "n_head": 4, "num_heads": 4, "d_kv": 16,
    "encoder_attention_heads": 4, "decoder_attention_heads": 4, "max_position_embeddings": 64, "n_positions": 64, "rotary_dim": 8,
    "kv_lora_rank": 16, "q_lora_rank": 16, "qk_rope_head_dim": 8, "qk_nope_head_dim": 8, "v_head_dim": 16, "n_group": 1, "topk_group": 1,
    "num_key_value_groups": 1, "max_source_positions": 16, "max_target_positions": 16, "num_mel_bins": 8, "image_size": 8, "patch_size": 4,
    "sliding_window": 8, "attention_window": 4, "local_radius": 2, "linear_num_key_heads": 2, "linear_num_value_heads": 2,
    "linear_key_head_dim": 8, "linear_value_head_dim": 8,
}  # fmt: skip


def get(config: Any, key: str) -> Any:
    """A (dotted) key of a configuration object, or None."""
    value = config
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
        if value is None:
            return None
    return value


def keys_read(f: Family) -> list[str]:
    """Every config key the entry reads."""
    keys = [*f.d_model, *f.d_ff, *f.layers, *f.act]
    keys += [k for k in (f.decoder_layers, f.decoder_d_ff) if k]
    if isinstance(f.bias, str):
        keys.append(f.bias)
    if f.moe:
        m = f.moe
        keys += [k for k in (*m.experts.split("|"), m.top_k, m.width, m.shared, m.shared_width) if k]
        keys += {"first_k_dense": ["first_k_dense_replace", m.dense_width], "sparse_step": ["decoder_sparse_step", "mlp_only_layers", m.dense_width],
                 "period_offset": ["expert_layer_period", "expert_layer_offset"], "moe_layers": ["interleave_moe_layer_step", m.dense_width],
                 "all": []}[m.interleave]  # fmt: skip
        if f.act_fixed == "swiglu_clamped":
            keys += ["swiglu_alpha", "swiglu_limit"]
    if f.model_type.endswith("t5"):
        keys.append("is_gated_act")
    return list(dict.fromkeys(keys))


def code_defaults() -> dict[str, dict[str, Any]]:
    """The default of each key an entry reads, from its configuration class built with no arguments."""
    out = {}
    for f in FAMILIES.values():
        if f.refused:
            continue
        config = CONFIG_MAPPING[f.model_type]()
        # a width the configuration computes from hidden_size when absent (ff_factor) has no fixed default
        skip = {"is_gated_act", *(f.d_ff if f.ff_factor else ())}
        out[f.model_type] = {k: get(config, k) for k in keys_read(f) if get(config, k) is not None and k not in skip}
    return out


def small_config(f: Family) -> Any:
    cls = CONFIG_MAPPING[f.model_type]
    base = cls()
    kw: dict[str, Any] = {k: v for k, v in SMALL.items() if hasattr(base, k) and not isinstance(getattr(cls, k, None), property)}
    kw.update({k: 0 for k in ("pad_token_id", "bos_token_id", "eos_token_id", "decoder_start_token_id") if getattr(base, k, None) is not None})
    if f.model_type == "gpt_neo":
        kw["attention_types"] = [[["global", "local"], LAYERS // 2]]
    for key in f.d_model:
        kw[key] = D
    for key in f.d_ff:
        kw[key] = FF
    for key in f.layers:
        kw[key] = LAYERS if not f.decoder_layers else 2
    if f.decoder_layers:
        kw[f.decoder_layers] = 3
        if f.decoder_d_ff:
            kw[f.decoder_d_ff] = FF
    if f.model_type.endswith("t5"):
        kw["feed_forward_proj"] = "gated-gelu"
    if f.moe:
        m = f.moe
        moe: dict[str, Any] = {m.experts.split("|")[0]: EXPERTS, m.top_k: TOP_K, m.width: MOE_FF}
        if m.shared:
            moe[m.shared] = 2
        if m.shared_width and m.shared_width != m.width:
            moe[m.shared_width] = 2 * MOE_FF
        if m.interleave == "first_k_dense":
            moe["first_k_dense_replace"] = 1
        elif m.interleave == "sparse_step":
            moe.update(decoder_sparse_step=1, mlp_only_layers=[0])
        elif m.interleave == "period_offset":
            moe.update(expert_layer_period=2, expert_layer_offset=1)
        elif m.interleave == "moe_layers":
            moe.update(interleave_moe_layer_step=2, **{m.dense_width: FF})
            moe[m.top_k] = EXPERTS  # Llama4TextExperts computes every expert for every token (see families.py)
        if m.interleave in ("first_k_dense", "sparse_step"):
            moe[m.dense_width] = FF
        if f.model_type == "dbrx":
            kw["ffn_config"] = {"ffn_hidden_size": MOE_FF, "moe_num_experts": EXPERTS, "moe_top_k": TOP_K}
            kw["n_heads"] = 4
            kw["attn_config"] = {"kv_n_heads": 2, "rope_theta": 10000.0}  # DbrxAttentionConfig lacks rope_theta, which DbrxAttention reads
        else:
            kw.update(moe)
    if f.model_type == "gpt_oss":
        kw["intermediate_size"] = MOE_FF
    config = cls(**kw)
    # the eager experts (a loop of matmuls over the routed rows): FlopCounterMode has no formula for grouped_mm
    config._experts_implementation = "eager"
    return config


def parts(model: nn.Module, spec: str) -> list[list[nn.Module]]:
    """The FFN blocks of `model` in order, each as its modules: `A|B` either class, `A+B` both,
    `A.x+y` attributes x and y of an A, `A+B.x` an A and attribute x of the B that follows it."""
    alternatives = spec.split("|")
    found: list[list[nn.Module]] = []
    seen: set[int] = set()
    for alt in alternatives:
        pieces = alt.split("+")
        first_cls, _, first_attr = pieces[0].partition(".")
        for name, module in model.named_modules():
            if type(module).__name__ != first_cls or id(module) in seen:
                continue
            if any(id(m) in seen for m in _ancestors(model, name)):
                continue
            seen.add(id(module))
            block = [getattr(module, first_attr)] if first_attr else [module]
            parent = _parent(model, name)
            for piece in pieces[1:]:
                cls, _, attr = piece.partition(".")
                if first_attr and not attr:  # A.x+y: attribute y of the same A
                    block.append(getattr(module, cls))
                    continue
                sibling = next(m for m in parent.modules() if type(m).__name__ == cls)
                block.append(getattr(sibling, attr) if attr else sibling)
            found.append(block)
    order = {id(m): i for i, m in enumerate(model.modules())}
    return sorted(found, key=lambda b: order[id(b[0])] if id(b[0]) in order else 0)


def _ancestors(model: nn.Module, name: str) -> list[nn.Module]:
    parts_ = name.split(".")
    return [model.get_submodule(".".join(parts_[:i])) for i in range(1, len(parts_))]


def _parent(model: nn.Module, name: str) -> nn.Module:
    return model.get_submodule(".".join(name.split(".")[:-1]))


def count(block: list[nn.Module]) -> int:
    return sum(p.numel() for m in block for p in m.parameters())


def run(block: list[nn.Module], x: torch.Tensor) -> torch.Tensor:
    for m in block:
        # BloomMLP and MptMLP add the residual themselves (not a matmul): a zero one
        out = m(x, torch.zeros_like(x)) if "residual" in inspect.signature(m.forward).parameters else m(x)
        x = out[0] if isinstance(out, tuple) else out
    return x


def flops(block: list[nn.Module], d_model: int) -> tuple[int, int]:
    """FlopCounterMode's forward and backward FLOPs of the block on a (BATCH, SEQ, d_model) input
    that needs its gradient (ffn-calc counts the first linear's input gradient)."""
    torch.manual_seed(0)
    x = torch.randn(BATCH, SEQ, d_model, requires_grad=True)
    with FlopCounterMode(display=False) as fwd:
        y = run(block, x)
    with FlopCounterMode(display=False) as bwd:
        y.backward(torch.randn_like(y))
    return fwd.get_total_flops(), bwd.get_total_flops()


def initialise(model: nn.Module) -> None:
    torch.manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.02)


def build(f: Family) -> dict[str, Any]:
    config = small_config(f)
    cls = getattr(transformers, f.model)
    model = cls(config).float()
    model.eval()
    initialise(model)
    blocks = parts(model, f.block)
    kinds: dict[str, dict[str, Any]] = {}
    for block in blocks:
        kind = "+".join(type(m).__name__ for m in block)
        if kind not in kinds:
            fwd, bwd = flops(block, get(config, f.d_model[0]))
            kinds[kind] = {"class": kind, "params": count(block), "layers": 0, "forward_matmul_flops": fwd, "backward_matmul_flops": bwd}
        kinds[kind]["layers"] += 1
    CONFIGS.mkdir(parents=True, exist_ok=True)
    diff = config.to_diff_dict()
    diff = {k: v for k, v in diff.items() if k not in ("transformers_version", "architectures", "output_router_logits")}
    diff["model_type"] = f.model_type
    path = CONFIGS / f"{f.model_type}.json"
    path.write_text(json.dumps(diff, indent=1, sort_keys=True) + "\n")
    return {
        "model_type": f.model_type,
        "transformers": transformers.__version__,
        "model_class": f.model,
        "config": str(path.relative_to(ROOT)),
        "tokens": BATCH * SEQ,
        "model_params": sum(p.numel() for p in model.parameters()),
        "model_ffn_params": sum(count(b) for b in blocks),
        "blocks": list(kinds.values()),
    }


# Published configurations (the checkpoints' config.json values that shape the FFN), for the presets.
PUBLISHED: dict[str, tuple[str, dict[str, Any]]] = {
    "gpt-oss-20b": ("gpt_oss", {"hidden_size": 2880, "intermediate_size": 2880, "num_local_experts": 32, "num_experts_per_tok": 4,
                                "num_hidden_layers": 24, "vocab_size": 201088, "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64}),
    "gpt-oss-120b": ("gpt_oss", {"hidden_size": 2880, "intermediate_size": 2880, "num_local_experts": 128, "num_experts_per_tok": 4,
                                 "num_hidden_layers": 36, "vocab_size": 201088, "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 64}),
    "qwen3-8b": ("qwen3", {"hidden_size": 4096, "intermediate_size": 12288, "num_hidden_layers": 36, "vocab_size": 151936,
                           "num_attention_heads": 32, "num_key_value_heads": 8, "head_dim": 128}),
    "qwen3-32b": ("qwen3", {"hidden_size": 5120, "intermediate_size": 25600, "num_hidden_layers": 64, "vocab_size": 151936,
                            "num_attention_heads": 64, "num_key_value_heads": 8, "head_dim": 128}),
    "qwen3-30b-a3b": ("qwen3_moe", {"hidden_size": 2048, "intermediate_size": 6144, "moe_intermediate_size": 768, "num_experts": 128,
                                    "num_experts_per_tok": 8, "num_hidden_layers": 48, "decoder_sparse_step": 1, "mlp_only_layers": [],
                                    "vocab_size": 151936, "num_attention_heads": 32, "num_key_value_heads": 4, "head_dim": 128}),
    "qwen3-235b-a22b": ("qwen3_moe", {"hidden_size": 4096, "intermediate_size": 12288, "moe_intermediate_size": 1536, "num_experts": 128,
                                      "num_experts_per_tok": 8, "num_hidden_layers": 94, "decoder_sparse_step": 1, "mlp_only_layers": [],
                                      "vocab_size": 151936, "num_attention_heads": 64, "num_key_value_heads": 4, "head_dim": 128}),
    "llama-4-scout-17b-16e": ("llama4_text", {"hidden_size": 5120, "intermediate_size": 8192, "intermediate_size_mlp": 16384,
                                              "num_local_experts": 16, "num_experts_per_tok": 1, "interleave_moe_layer_step": 1,
                                              "num_hidden_layers": 48, "vocab_size": 202048, "num_attention_heads": 40,
                                              "num_key_value_heads": 8, "head_dim": 128}),
    "llama-4-maverick-17b-128e": ("llama4_text", {"hidden_size": 5120, "intermediate_size": 8192, "intermediate_size_mlp": 16384,
                                                  "num_local_experts": 128, "num_experts_per_tok": 1, "interleave_moe_layer_step": 2,
                                                  "num_hidden_layers": 48, "vocab_size": 202048, "num_attention_heads": 40,
                                                  "num_key_value_heads": 8, "head_dim": 128}),
    "gemma-3-27b": ("gemma3_text", {"hidden_size": 5376, "intermediate_size": 21504, "num_hidden_layers": 62, "vocab_size": 262208,
                                    "num_attention_heads": 32, "num_key_value_heads": 16, "head_dim": 128}),
    "phi-4": ("phi3", {"hidden_size": 5120, "intermediate_size": 17920, "num_hidden_layers": 40, "vocab_size": 100352,
                       "num_attention_heads": 40, "num_key_value_heads": 10}),
    "deepseek-r1": ("deepseek_v3", {"hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048, "n_routed_experts": 256,
                                    "num_experts_per_tok": 8, "n_shared_experts": 1, "first_k_dense_replace": 3, "num_hidden_layers": 61,
                                    "vocab_size": 129280, "n_group": 8, "topk_group": 4}),
    "kimi-k2": ("deepseek_v3", {"hidden_size": 7168, "intermediate_size": 18432, "moe_intermediate_size": 2048, "n_routed_experts": 384,
                                "num_experts_per_tok": 8, "n_shared_experts": 1, "first_k_dense_replace": 1, "num_hidden_layers": 61,
                                "vocab_size": 163840, "n_group": 1, "topk_group": 1, "num_attention_heads": 64}),
}  # fmt: skip


def published(name: str) -> dict[str, Any]:
    """The preset's model built from its published values on the meta device: its FFN blocks'
    parameters per kind and in all."""
    model_type, values = PUBLISHED[name]
    f = FAMILIES[model_type]
    config = CONFIG_MAPPING[model_type](**values)
    with torch.device("meta"):
        model = getattr(transformers, f.model)(config)
    blocks = parts(model, f.block)
    kinds: dict[str, dict[str, Any]] = {}
    for block in blocks:
        kind = "+".join(type(m).__name__ for m in block)
        kinds.setdefault(kind, {"class": kind, "params": count(block), "layers": 0})["layers"] += 1
    return {
        "preset": name,
        "model_type": model_type,
        "transformers": transformers.__version__,
        "model_class": f.model,
        "config": values,
        "model_params": sum(p.numel() for p in model.parameters()),
        "model_ffn_params": sum(count(b) for b in blocks),
        "blocks": list(kinds.values()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--defaults", action="store_true", help="print CODE_DEFAULTS for families.py and exit")
    parser.add_argument("--only", nargs="*", help="these model types only (the golden file is not written)")
    args = parser.parse_args()
    if transformers.__version__ != TRANSFORMERS:
        sys.exit(f"families.py was read from transformers {TRANSFORMERS}; this is {transformers.__version__}")
    if args.defaults:
        print("CODE_DEFAULTS: dict[str, dict[str, object]] = {")
        for model_type, values in code_defaults().items():
            print(f"    {model_type!r}: {values!r},")
        print("}")
        return
    entries, failed = [], []
    for f in FAMILIES.values():
        if f.refused or (args.only and f.model_type not in args.only):
            continue
        try:
            entries.append(build(f))
            print(f"{f.model_type}: {entries[-1]['model_ffn_params']:,} FFN parameters, blocks {[b['class'] for b in entries[-1]['blocks']]}")
        except Exception as e:  # report them all, then fail
            failed.append(f.model_type)
            print(f"{f.model_type}: FAILED {type(e).__name__}: {e}", file=sys.stderr)
    presets = [published(name) for name in PUBLISHED] if not args.only else []
    for p in presets:
        print(f"{p['preset']}: {p['model_ffn_params']:,} FFN parameters of {p['model_params']:,}")
    if failed:
        sys.exit(f"failed: {', '.join(failed)}")
    if args.only:
        return
    golden = {
        "transformers": transformers.__version__,
        "torch": torch.__version__.split("+")[0],
        "counter": "torch.utils.flop_counter.FlopCounterMode: matmul FLOPs (2·M·K·N), forward and backward; float32 on the CPU",
        "input": [BATCH, SEQ],
        "families": entries,
        "presets": presets,
    }
    GOLDEN.write_text(json.dumps(golden, indent=1) + "\n")
    print(f"wrote {GOLDEN.relative_to(ROOT)}: {len(entries)} families, {len(presets)} presets")


if __name__ == "__main__":
    main()
