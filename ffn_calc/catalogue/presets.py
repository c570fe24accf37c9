"""Published models' feed-forward layers, each with its source.

Each preset fills in what the FFN needs: d_model, d_ff (per expert for a mixture), the
activation (a gated one for GLU models), biases, experts and layers, and the kind of norm the
model puts before (or after) its FFN, used when `--norm pre` or `post` asks for one; a preset
alone counts the bare FFN (norm none). Flags given on the
command line override a preset's values. Values come from the models' published config.json
files (Hugging Face hub) or, where none exists, the paper's table; `source` says which.
`dtype` is the config.json's `torch_dtype`, the storage type used unless --dtype says otherwise
(float32 where no config.json gives one).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """One model's FFN. `layers` counts the layers that have this FFN, and `dense_layers` the
    layers of a mixed stack whose FFN is dense, of width `dense_d_ff`; `note` says what a
    whole-model count must add or knows about (encoder + decoder)."""

    name: str
    d_model: int
    d_ff: int
    activation: str
    bias: bool
    layers: int
    source: str
    experts: int = 0
    top_k: int = 0
    shared_experts: int = 0
    norm_type: str = "layer"  # what --norm pre/post puts in (presets keep norm none: the bare FFN)
    note: str = ""
    dtype: str | None = None  # the config.json's torch_dtype, the default --dtype; None: none published
    shared_expert_gate: bool = False  # Qwen2-MoE: the shared experts' output scaled by sigmoid(x·w_s)
    dense_layers: int = 0  # DeepSeek's first_k_dense_replace
    dense_d_ff: int = 0  # their intermediate_size
    router_bias: bool = False  # gpt-oss: the router's linear has a bias
    # The attention's shape from config.json: (num_attention_heads, num_key_value_heads, head_dim), or DeepSeek's
    # MLA (num_attention_heads, q_lora_rank (0: null), kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim);
    # None: not recorded (explain assumes 4·d²). model/attention.py's attention_of reads it.
    attention: tuple[int, ...] | None = None


PRESETS: dict[str, Preset] = {
    p.name: p
    for p in (
        Preset("transformer-base", 512, 2048, "relu", True, 12,
               "Vaswani et al. 2017, Attention Is All You Need, §3.3 and Table 3 (base); post-LayerNorm",
               note="6 encoder + 6 decoder layers"),
        Preset("transformer-big", 1024, 4096, "relu", True, 12,
               "Vaswani et al. 2017, Table 3 (big); post-LayerNorm", note="6 encoder + 6 decoder layers"),
        Preset("bert-base", 768, 3072, "gelu", True, 12,
               "google-bert/bert-base-uncased config.json (hidden_size, intermediate_size, hidden_act gelu; layer_norm_eps: post-LayerNorm)",
               attention=(12, 12, 64)),
        Preset("bert-large", 1024, 4096, "gelu", True, 24, "google-bert/bert-large-uncased config.json (layer_norm_eps: post-LayerNorm)",
               attention=(16, 16, 64)),
        Preset("gpt2", 768, 3072, "gelu_tanh", True, 12,
               "openai-community/gpt2 config.json (n_embd 768, n_inner null = 4·n_embd, gelu_new; layer_norm_epsilon: pre-LayerNorm)",
               attention=(12, 12, 64)),
        Preset("gpt2-medium", 1024, 4096, "gelu_tanh", True, 24, "openai-community/gpt2-medium config.json (pre-LayerNorm)", attention=(16, 16, 64)),
        Preset("gpt2-large", 1280, 5120, "gelu_tanh", True, 36, "openai-community/gpt2-large config.json (pre-LayerNorm)", attention=(20, 20, 64)),
        Preset("gpt2-xl", 1600, 6400, "gelu_tanh", True, 48, "openai-community/gpt2-xl config.json (pre-LayerNorm)", attention=(25, 25, 64)),
        Preset("gpt3-175b", 12288, 49152, "gelu", True, 96,
               "Brown et al. 2020, Language Models are Few-Shot Learners, Table 2.1 (d_ff = 4·d_model; pre-LayerNorm as GPT-2)",
               attention=(96, 96, 128)),
        Preset("t5-base", 768, 3072, "relu", False, 24,
               "google-t5/t5-base config.json (d_ff 3072, feed_forward_proj relu; no biases; pre-RMSNorm: T5LayerNorm)",
               note="12 encoder + 12 decoder layers", norm_type="rms"),
        Preset("t5-v1_1-base", 768, 2048, "geglu_tanh", False, 24,
               "google/t5-v1_1-base config.json (d_ff 2048, feed_forward_proj gated-gelu = gelu_new; pre-RMSNorm: T5LayerNorm)",
               note="12 encoder + 12 decoder layers", norm_type="rms"),
        Preset("llama-2-7b", 4096, 11008, "swiglu", False, 32, "meta-llama/Llama-2-7b-hf config.json (rms_norm_eps: pre-RMSNorm)",
               norm_type="rms", dtype="float16", attention=(32, 32, 128)),
        Preset("llama-2-13b", 5120, 13824, "swiglu", False, 40, "meta-llama/Llama-2-13b-hf config.json (pre-RMSNorm)",
               norm_type="rms", dtype="float16", attention=(40, 40, 128)),
        Preset("llama-2-70b", 8192, 28672, "swiglu", False, 80, "meta-llama/Llama-2-70b-hf config.json (pre-RMSNorm)",
               norm_type="rms", dtype="float16", attention=(64, 8, 128)),
        Preset("llama-3-8b", 4096, 14336, "swiglu", False, 32, "meta-llama/Meta-Llama-3-8B config.json (pre-RMSNorm)",
               norm_type="rms", dtype="bfloat16", attention=(32, 8, 128)),
        Preset("llama-3-70b", 8192, 28672, "swiglu", False, 80, "meta-llama/Meta-Llama-3-70B config.json (pre-RMSNorm)",
               norm_type="rms", dtype="bfloat16", attention=(64, 8, 128)),
        Preset("llama-3.1-405b", 16384, 53248, "swiglu", False, 126,
               "meta-llama/Llama-3.1-405B config.json; Llama 3 paper (Dubey et al. 2024) Table 3 (pre-RMSNorm)", norm_type="rms", dtype="bfloat16",
               attention=(128, 8, 128)),
        Preset("mistral-7b", 4096, 14336, "swiglu", False, 32, "mistralai/Mistral-7B-v0.1 config.json (pre-RMSNorm)",
               norm_type="rms", dtype="bfloat16", attention=(32, 8, 128)),
        Preset("mixtral-8x7b", 4096, 14336, "swiglu", False, 32,
               "mistralai/Mixtral-8x7B-v0.1 config.json (num_local_experts 8, num_experts_per_tok 2; pre-RMSNorm)",
               experts=8, top_k=2, norm_type="rms", dtype="bfloat16", attention=(32, 8, 128)),
        Preset("qwen2-7b", 3584, 18944, "swiglu", False, 28, "Qwen/Qwen2-7B config.json (pre-RMSNorm)", norm_type="rms", dtype="bfloat16",
               attention=(28, 4, 128)),
        Preset("gemma-7b", 3072, 24576, "geglu_tanh", False, 28,
               "google/gemma-7b config.json (hidden_act gelu, run as the tanh approximation; pre-RMSNorm, γ stored as γ − 1)",
               note="Gemma's report quotes 49152 'feedforward hidden dims': gate and up together", norm_type="rms", dtype="bfloat16",
               attention=(16, 16, 256)),
        Preset("qwen1.5-moe-a2.7b", 2048, 1408, "swiglu", False, 24,
               "Qwen/Qwen1.5-MoE-A2.7B config.json (moe_intermediate_size 1408, num_experts 60, num_experts_per_tok 4, "
               "shared_expert_intermediate_size 5632, shared_expert_gate in Qwen2MoeSparseMoeBlock; pre-RMSNorm; torch_dtype bfloat16)",
               experts=60, top_k=4, shared_experts=4, shared_expert_gate=True, norm_type="rms", dtype="bfloat16",
               note="its one shared expert of width 5632 is counted as 4 of width 1408 (the same parameters and FLOPs); "
               "norm_topk_prob is false, the top-k weights' renormalisation is counted all the same"),
        Preset("qwen2-57b-a14b", 3584, 2560, "swiglu", False, 28,
               "Qwen/Qwen2-57B-A14B config.json (moe_intermediate_size 2560, num_experts 64, num_experts_per_tok 8, "
               "shared_expert_intermediate_size 20480, gated shared expert; pre-RMSNorm; torch_dtype bfloat16)",
               experts=64, top_k=8, shared_experts=8, shared_expert_gate=True, norm_type="rms", dtype="bfloat16",
               note="its one shared expert of width 20480 is counted as 8 of width 2560 (the same parameters and FLOPs)"),
        Preset("qwen3-30b-a3b", 2048, 768, "swiglu", False, 48,
               "Qwen/Qwen3-30B-A3B config.json (moe_intermediate_size 768, num_experts 128, num_experts_per_tok 8, "
               "no shared expert; pre-RMSNorm; torch_dtype bfloat16)",
               experts=128, top_k=8, norm_type="rms", dtype="bfloat16"),
        Preset("deepseek-v2-lite", 2048, 1408, "swiglu", False, 26,
               "deepseek-ai/DeepSeek-V2-Lite config.json (moe_intermediate_size 1408, n_routed_experts 64, "
               "num_experts_per_tok 6, n_shared_experts 2, first_k_dense_replace 1; pre-RMSNorm; torch_dtype bfloat16)",
               experts=64, top_k=6, shared_experts=2, norm_type="rms", dtype="bfloat16", dense_layers=1, dense_d_ff=10944,
               note="27 layers: the first is dense (intermediate_size 10944), then 26 MoE layers", attention=(16, 0, 512, 128, 64, 128)),
        Preset("olmoe-1b-7b", 2048, 1024, "swiglu", False, 16,
               "allenai/OLMoE-1B-7B-0924 config.json (intermediate_size 1024 per expert, num_experts 64, "
               "num_experts_per_tok 8; rms_norm_eps: pre-RMSNorm; torch_dtype float32)",
               experts=64, top_k=8, norm_type="rms", dtype="float32",
               note="norm_topk_prob is false, the top-k weights' renormalisation is counted all the same"),
        Preset("llama-3.2-1b", 2048, 8192, "swiglu", False, 16,
               "meta-llama/Llama-3.2-1B config.json (intermediate_size 8192; pre-RMSNorm; torch_dtype bfloat16)",
               norm_type="rms", dtype="bfloat16", attention=(32, 8, 64)),
        Preset("gemma-2-9b", 3584, 14336, "geglu_tanh", False, 42,
               "google/gemma-2-9b config.json (hidden_activation gelu_pytorch_tanh; RMSNorm before and after the FFN, "
               "γ stored as γ − 1; torch_dtype float32)",
               norm_type="rms", dtype="float32",
               note="Gemma 2 also normalises the FFN's output (pre_ and post_feedforward_layernorm): "
               "--norm pre counts one of its two RMSNorms"),
        Preset("palm-540b", 18432, 73728, "swiglu", False, 118,
               "Chowdhery et al. 2022, PaLM, Table 1 and §2 (SwiGLU, d_ff = 4·d_model, no biases; pre-LayerNorm)",
               note="its LayerNorms have no bias (§2): with --norm pre, ffn-calc's LayerNorm counts d_model β parameters more"),
        Preset("deepseek-v3", 7168, 2048, "swiglu", False, 58,
               "deepseek-ai/DeepSeek-V3 config.json (moe_intermediate_size 2048, n_routed_experts 256, "
               "num_experts_per_tok 8, n_shared_experts 1, first_k_dense_replace 3, intermediate_size 18432; pre-RMSNorm)",
               experts=256, top_k=8, shared_experts=1, dense_layers=3, dense_d_ff=18432,
               note="61 layers: the first 3 are dense (intermediate_size 18432), then 58 MoE layers; "
               "the router's sigmoid scoring and its 256 bias terms are not modelled", norm_type="rms", dtype="bfloat16",
               attention=(128, 1536, 512, 128, 64, 128)),
        Preset("gpt-oss-20b", 2880, 2880, "swiglu_clamped", True, 24,
               "openai/gpt-oss-20b config.json (hidden_size 2880, intermediate_size 2880, num_local_experts 32, num_experts_per_tok 4, "
               "num_hidden_layers 24, swiglu_limit 7.0; GptOssExperts: biased gate_up_proj and down_proj, GptOssTopKRouter: biased; "
               "pre-RMSNorm); checked against GptOssModel built on the meta device (transformers 5.24.0)",
               experts=32, top_k=4, router_bias=True, norm_type="rms", dtype="bfloat16",
               note="the checkpoint stores its expert weights in MXFP4: --weight-dtype mxfp4 counts them as stored (E2M1 _blocks and "
               "an E8M0 _scales byte per 32), as --config does from its quantization_config; bfloat16 is the dtype of its other weights"),
        Preset("gpt-oss-120b", 2880, 2880, "swiglu_clamped", True, 36,
               "openai/gpt-oss-120b config.json (hidden_size 2880, intermediate_size 2880, num_local_experts 128, num_experts_per_tok 4, "
               "num_hidden_layers 36, swiglu_limit 7.0; biased experts and router; pre-RMSNorm); checked against GptOssModel on the meta device",
               experts=128, top_k=4, router_bias=True, norm_type="rms", dtype="bfloat16",
               note="the checkpoint stores its expert weights in MXFP4: --weight-dtype mxfp4 counts them as stored (E2M1 _blocks and "
               "an E8M0 _scales byte per 32), as --config does from its quantization_config; bfloat16 is the dtype of its other weights"),
        Preset("qwen3-8b", 4096, 12288, "swiglu", False, 36, "Qwen/Qwen3-8B config.json (intermediate_size 12288, 36 layers; pre-RMSNorm)",
               norm_type="rms", dtype="bfloat16"),
        Preset("qwen3-32b", 5120, 25600, "swiglu", False, 64, "Qwen/Qwen3-32B config.json (intermediate_size 25600, 64 layers; pre-RMSNorm)",
               norm_type="rms", dtype="bfloat16"),
        Preset("qwen3-235b-a22b", 4096, 1536, "swiglu", False, 94,
               "Qwen/Qwen3-235B-A22B config.json (moe_intermediate_size 1536, num_experts 128, num_experts_per_tok 8, 94 layers, "
               "decoder_sparse_step 1, mlp_only_layers []; no shared expert; pre-RMSNorm)",
               experts=128, top_k=8, norm_type="rms", dtype="bfloat16"),
        Preset("llama-4-scout-17b-16e", 5120, 8192, "swiglu", False, 48,
               "meta-llama/Llama-4-Scout-17B-16E config.json text_config (intermediate_size 8192, num_local_experts 16, num_experts_per_tok 1, "
               "interleave_moe_layer_step 1: every layer MoE; Llama4TextMoe's shared_expert is intermediate_size wide; pre-RMSNorm)",
               experts=16, top_k=1, shared_experts=1, norm_type="rms", dtype="bfloat16",
               note="the router's sigmoid weight scales each expert's input; transformers' Llama4TextExperts computes every expert on every token"),
        Preset("llama-4-maverick-17b-128e", 5120, 8192, "swiglu", False, 24,
               "meta-llama/Llama-4-Maverick-17B-128E config.json text_config (intermediate_size 8192, intermediate_size_mlp 16384, "
               "num_local_experts 128, num_experts_per_tok 1, interleave_moe_layer_step 2: odd layers 1 to 47 MoE; one shared expert; pre-RMSNorm)",
               experts=128, top_k=1, shared_experts=1, dense_layers=24, dense_d_ff=16384, norm_type="rms", dtype="bfloat16",
               note="48 layers: 24 dense (intermediate_size_mlp 16384) interleaved with 24 MoE layers"),
        Preset("gemma-3-27b", 5376, 21504, "geglu_tanh", False, 62,
               "google/gemma-3-27b-pt config.json text_config (hidden_size 5376, intermediate_size 21504, 62 layers, "
               "hidden_activation gelu_pytorch_tanh; RMSNorm before and after the FFN)",
               norm_type="rms", dtype="bfloat16",
               note="Gemma 3 also normalises the FFN's output (pre_ and post_feedforward_layernorm): --norm pre counts one of its two RMSNorms"),
        Preset("phi-4", 5120, 17920, "swiglu", False, 40,
               "microsoft/phi-4 config.json (model_type phi3: Phi3MLP's fused gate_up_proj; intermediate_size 17920, 40 layers; pre-RMSNorm)",
               norm_type="rms", dtype="bfloat16"),
        Preset("deepseek-r1", 7168, 2048, "swiglu", False, 58,
               "deepseek-ai/DeepSeek-R1 config.json: DeepSeek-V3's shapes (moe_intermediate_size 2048, n_routed_experts 256, "
               "num_experts_per_tok 8, n_shared_experts 1, first_k_dense_replace 3, intermediate_size 18432; pre-RMSNorm)",
               experts=256, top_k=8, shared_experts=1, dense_layers=3, dense_d_ff=18432, norm_type="rms", dtype="bfloat16",
               note="61 layers: the first 3 are dense (intermediate_size 18432), then 58 MoE layers; the checkpoint's FP8 weights: "
               "--weight-dtype fp8_block counts them as stored (float8_e4m3fn and a float32 weight_scale_inv per 128 × 128 block, "
               "weight_block_size [128, 128]), as --config does from its quantization_config", attention=(128, 1536, 512, 128, 64, 128)),
        Preset("kimi-k2", 7168, 2048, "swiglu", False, 60,
               "moonshotai/Kimi-K2-Instruct config.json (model_type kimi_k2, architectures DeepseekV3ForCausalLM: DeepSeek-V3's code; "
               "moe_intermediate_size 2048, n_routed_experts 384, num_experts_per_tok 8, n_shared_experts 1, first_k_dense_replace 1, "
               "intermediate_size 18432, 61 layers; pre-RMSNorm)",
               experts=384, top_k=8, shared_experts=1, dense_layers=1, dense_d_ff=18432, norm_type="rms", dtype="bfloat16",
               note="61 layers: the first is dense (intermediate_size 18432), then 60 MoE layers; the checkpoint's FP8 weights: "
               "--weight-dtype fp8_block counts them as stored (float8_e4m3fn and a float32 weight_scale_inv per 128 × 128 block, "
               "weight_block_size [128, 128]), as --config does from its quantization_config", attention=(64, 1536, 512, 128, 64, 128)),
    )
}  # fmt: skip


def lookup(name: str) -> Preset:
    """The preset called `name` (case-insensitive), or KeyError."""
    return PRESETS[name.strip().lower()]
