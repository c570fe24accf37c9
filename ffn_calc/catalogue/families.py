"""The model families whose config.json ffn-calc reads, each as its transformers code builds
its feed-forward: gated or not, biases, the activation's keys, the norm and where it sits, the
expert keys and how dense and MoE layers interleave. Read from the modeling_*.py and
configuration_*.py files of transformers `TRANSFORMERS` (each entry names its classes); the
defaults of the keys each entry reads are `CODE_DEFAULTS` below, generated from the
configuration classes by scripts/crosscheck_families.py, which also builds every family's
block and whole model and records what they count in tests/data/families_golden.json.

Data only (standard library); imported when a config.json is read. A family with something
ffn-calc cannot count exactly is listed with `refused`, the one line that says why.
"""

from __future__ import annotations

from typing import NamedTuple

TRANSFORMERS = "5.24.0"  # the version read; the cross-check builds each family with it

# Norm placements around the FFN (what the decoder layer's forward does with the MLP's input and output).
PLACEMENTS = {
    "pre": "x + FFN(norm(x))",
    "post": "norm(x + FFN(x))",
    "pre+post": "x + norm₂(FFN(norm₁(x))): a norm before and another after the FFN, inside the residual",
    "output": "x + norm(FFN(x)): the norm on the FFN's output only (OLMo-2's reordered norm)",
    "parallel": "x + attention(norm(x)) + FFN(norm(x)): one norm shared with the attention",
}
# How a MoE family places its MoE layers among dense ones (the decoder layer's __init__).
INTERLEAVES = {
    "all": "every layer is MoE",
    "first_k_dense": "layer i is MoE when i ≥ first_k_dense_replace",
    "sparse_step": "layer i is MoE when i is not in mlp_only_layers and (i + 1) % decoder_sparse_step == 0",
    "period_offset": "layer i is MoE when i % expert_layer_period == expert_layer_offset",
    "moe_layers": "layer i is MoE when i is in moe_layers, by default range(interleave_moe_layer_step − 1, layers, step)",
}


class Moe(NamedTuple):
    """The expert keys of a MoE family. `width`: the routed experts' width key; `shared`: the key
    counting shared experts `width` wide, or `shared_width`: the key of one shared expert's width;
    `shared_gate`: sigmoid(x·w_s) scales the shared output; `router_bias`: the router's linear
    has a bias (a parameter); `dense_width`: the
    key of the dense layers' width in a mixed stack."""

    experts: str
    top_k: str
    width: str
    interleave: str = "all"
    shared: str = ""
    shared_width: str = ""
    shared_gate: bool = False
    router_bias: bool = False
    dense_width: str = "intermediate_size"


class Family(NamedTuple):
    """One model family. Keys are config.json fields, first present wins (a dotted key reads a
    nested object); `bias` is fixed by the code (True/False) or read from a key; `act` lists the
    activation's keys, `act_fixed` is an activation the code uses whatever the config says, and
    `act_rewrite` the spellings its configuration class rewrites. `ff_factor`: the code fixes
    d_ff = factor × d_model. `decoder_layers`: a second stack's layer key (encoder-decoder);
    `decoder_d_ff`: its width key, which must equal the encoder's. `norm` is a key of
    NORM_TYPES (norms.py); `placement` a key of PLACEMENTS."""

    model_type: str
    block: str  # the transformers class (or classes) of the FFN, module of the family
    model: str  # the transformers class the whole-model count is taken from
    gated: bool
    bias: bool | str
    norm: str
    placement: str
    act: tuple[str, ...] = ("hidden_act",)
    act_fixed: str = ""
    act_rewrite: tuple[tuple[str, str], ...] = ()
    d_model: tuple[str, ...] = ("hidden_size",)
    d_ff: tuple[str, ...] = ("intermediate_size",)
    layers: tuple[str, ...] = ("num_hidden_layers",)
    ff_factor: int = 0
    decoder_layers: str = ""
    decoder_d_ff: str = ""
    moe: Moe | None = None
    unmodelled: tuple[tuple[str, str], ...] = ()  # (key, why): the file is refused when the key is true
    refused: str = ""
    note: str = ""
    # the FFN's module under model.layers.{i} as the checkpoint names it (the decoder layer's
    # attribute), or its whole path with {i} where the layers are not model.layers (DBRX's
    # transformer.blocks.{i}.ffn), which quantization_config's module lists match (inputs/quantization.py)
    container: str = "mlp"


def _llama(model_type: str, prefix: str, bias: bool | str = False, norm: str = "rms", placement: str = "pre", **kw: object) -> Family:
    """A LlamaMLP-shaped family: down(act(gate(x)) ⊙ up(x)), its RMSNorm before the FFN."""
    return Family(model_type, f"{prefix}MLP", f"{prefix}ForCausalLM", True, bias, norm, placement, **kw)  # type: ignore[arg-type]


def _bert(model_type: str, prefix: str, **kw: object) -> Family:
    """A BERT-shaped encoder: {prefix}Intermediate (dense + act) then {prefix}Output's dense,
    biased, its LayerNorm after the residual."""
    return Family(model_type, f"{prefix}Intermediate+{prefix}Output.dense", f"{prefix}Model", False, True, "layer", "post", **kw)  # type: ignore[arg-type]


def _bart(model_type: str, prefix: str, placement: str = "post", **kw: object) -> Family:
    """A BART-shaped encoder-decoder: fc1 → act → fc2 in every encoder and decoder layer, biased."""
    return Family(
        model_type, f"{prefix}EncoderLayer.fc1+fc2|{prefix}DecoderLayer.fc1+fc2", f"{prefix}Model", False, True, "layer", placement,
        act=("activation_function",), d_model=("d_model",), d_ff=("encoder_ffn_dim",), layers=("encoder_layers",),
        decoder_layers="decoder_layers", decoder_d_ff="decoder_ffn_dim", **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def _t5(model_type: str, prefix: str, **kw: object) -> Family:
    """A T5-shaped encoder-decoder: T5DenseActDense or T5DenseGatedActDense by feed_forward_proj,
    no biases, T5LayerNorm (an RMSNorm) before the FFN."""
    return Family(
        model_type, f"{prefix}DenseActDense|{prefix}DenseGatedActDense", f"{prefix}Model", False, False, "rms", "pre",
        act=("feed_forward_proj",), d_model=("d_model",), d_ff=("d_ff",), layers=("num_layers",), decoder_layers="num_decoder_layers", **kw,  # type: ignore[arg-type]
    )  # fmt: skip


_EXPERTS, _TOP_K = "num_local_experts", "num_experts_per_tok"
_FAMILIES: tuple[Family, ...] = (
    # --- decoder LLMs, gated (LlamaMLP and its copies) -------------------------------------------------
    _llama("llama", "Llama", bias="mlp_bias"),
    _llama("mistral", "Mistral"),
    _llama("ministral", "Ministral"),
    _llama("qwen2", "Qwen2"),
    _llama("qwen3", "Qwen3"),
    _llama("gemma", "Gemma", act_rewrite=(("gelu", "gelu_pytorch_tanh"),), note="GemmaConfig rewrites hidden_act gelu to gelu_pytorch_tanh"),
    _llama("gemma2", "Gemma2", placement="pre+post", act=("hidden_activation",)),
    _llama("gemma3_text", "Gemma3", placement="pre+post", act=("hidden_activation",)),
    _llama("vaultgemma", "VaultGemma", act=("hidden_activation",)),
    _llama("cohere", "Cohere", norm="layer_nobias", placement="parallel"),
    _llama("cohere2", "Cohere2", norm="layer_nobias", placement="parallel"),
    _llama("granite", "Granite", bias="mlp_bias"),
    _llama("olmo", "Olmo", norm="layer_nonparam"),
    _llama("olmo2", "Olmo2", placement="output"),
    _llama("olmo3", "Olmo3", placement="output"),
    _llama("exaone4", "Exaone4", placement="output"),
    _llama("helium", "Helium", bias="mlp_bias"),
    _llama("smollm3", "SmolLM3", bias="mlp_bias"),
    _llama("seed_oss", "SeedOss", bias="mlp_bias"),
    _llama("ernie4_5", "Ernie4_5", bias="use_bias"),
    _llama("hunyuan_v1_dense", "HunYuanDenseV1"),
    _llama("diffllama", "DiffLlama"),
    _llama("stablelm", "StableLm", norm="layer"),
    _llama("phi3", "Phi3", note="Phi3MLP fuses gate and up in one gate_up_proj (d, 2·d_ff)"),
    _llama("glm", "Glm", note="GlmMLP fuses gate and up in one gate_up_proj (d, 2·d_ff)"),
    _llama("glm4", "Glm4", placement="pre+post", note="Glm4MLP fuses gate and up; post_mlp_layernorm normalises its output"),
    # --- decoder LLMs, plain two-matrix MLP ---------------------------------------------------------
    Family("gpt2", "GPT2MLP", "GPT2Model", False, True, "layer", "pre", act=("activation_function",), d_model=("n_embd",), d_ff=("n_inner",),
           layers=("n_layer",), ff_factor=4, note="n_inner null: 4 × n_embd (GPT2Block)"),
    Family("gpt_neox", "GPTNeoXMLP", "GPTNeoXModel", False, True, "layer", "pre"),
    Family("gptj", "GPTJMLP", "GPTJModel", False, True, "layer", "parallel", act=("activation_function",), d_model=("n_embd",), d_ff=("n_inner",),
           layers=("n_layer",), ff_factor=4, note="n_inner null: 4 × n_embd (GPTJBlock)"),
    Family("gpt_neo", "GPTNeoMLP", "GPTNeoModel", False, True, "layer", "pre", act=("activation_function",), d_ff=("intermediate_size",),
           layers=("num_layers",), ff_factor=4, note="intermediate_size null: 4 × hidden_size (GPTNeoBlock)"),
    Family("gpt_bigcode", "GPTBigCodeMLP", "GPTBigCodeModel", False, True, "layer", "pre", act=("activation_function",), d_model=("n_embd",),
           d_ff=("n_inner",), layers=("n_layer",), ff_factor=4, note="n_inner null: 4 × n_embd (GPTBigCodeBlock)"),
    Family("bloom", "BloomMLP", "BloomModel", False, True, "layer", "pre", act=(), act_fixed="gelu_new", d_ff=(), layers=("n_layer",), ff_factor=4,
           note="BloomMLP: 4 × hidden_size and bloom_gelu (the tanh approximation), whatever the config says"),
    Family("falcon", "FalconMLP", "FalconModel", False, "bias", "layer", "pre", act=("activation",), d_ff=("ffn_hidden_size",), ff_factor=4,
           note="FalconConfig: ffn_hidden_size null is 4 × hidden_size"),
    Family("opt", "OPTDecoderLayer.fc1+fc2", "OPTModel", False, "enable_bias", "layer", "pre", act=("activation_function",), d_ff=("ffn_dim",)),
    Family("codegen", "CodeGenMLP", "CodeGenModel", False, True, "layer", "parallel", act=("activation_function",), d_model=("n_embd",),
           d_ff=("n_inner",), layers=("n_layer",), ff_factor=4, note="n_inner null: 4 × n_embd (CodeGenBlock)"),
    Family("mpt", "MptMLP", "MptModel", False, False, "layer", "pre", act=(), act_fixed="gelu", d_model=("d_model",), d_ff=(), layers=("n_layers",),
           ff_factor=4, note="MptMLP: 4 × d_model, nn.GELU(approximate='none'), no biases, whatever the config says"),
    Family("biogpt", "BioGptDecoderLayer.fc1+fc2", "BioGptModel", False, True, "layer", "pre"),
    Family("xglm", "XGLMDecoderLayer.fc1+fc2", "XGLMModel", False, True, "layer", "pre", act=("activation_function",), d_model=("d_model",),
           d_ff=("ffn_dim",), layers=("num_layers",)),
    Family("starcoder2", "Starcoder2MLP", "Starcoder2Model", False, "use_bias", "layer", "pre"),
    Family("persimmon", "PersimmonMLP", "PersimmonModel", False, True, "layer", "pre"),
    Family("phi", "PhiMLP", "PhiModel", False, True, "layer", "parallel"),
    Family("nemotron", "NemotronMLP", "NemotronModel", False, "mlp_bias", "layer", "pre", note="NemotronLayerNorm1P: γ stored as γ − 1"),
    Family("arcee", "ArceeMLP", "ArceeModel", False, "mlp_bias", "rms", "pre"),
    # --- encoders ---------------------------------------------------------------------------------
    _bert("bert", "Bert"),
    _bert("roberta", "Roberta"),
    _bert("xlm-roberta", "XLMRoberta"),
    _bert("camembert", "Camembert"),
    _bert("electra", "Electra"),
    _bert("deberta", "Deberta"),
    _bert("deberta-v2", "DebertaV2"),
    _bert("mpnet", "MPNet"),
    Family("distilbert", "FFN", "DistilBertModel", False, True, "layer", "post", act=("activation",), d_model=("dim",), d_ff=("hidden_dim",),
           layers=("n_layers",)),
    Family("vit", "ViTMLP", "ViTModel", False, True, "layer", "pre"),
    Family("modernbert", "ModernBertMLP", "ModernBertModel", True, "mlp_bias", "layer", "pre", act=("hidden_activation",),
           note="ModernBertMLP: Wi is (d, 2·d_ff), split into input and gate: act(input) ⊙ gate"),
    # --- encoder-decoders ---------------------------------------------------------------------------
    _t5("t5", "T5"),
    _t5("mt5", "MT5"),
    _t5("umt5", "UMT5"),
    _t5("longt5", "LongT5"),
    _bart("bart", "Bart"),
    _bart("mbart", "MBart", placement="pre"),
    _bart("marian", "Marian"),
    _bart("pegasus", "Pegasus", placement="pre"),
    _bart("m2m_100", "M2M100", placement="pre"),
    _bart("blenderbot", "Blenderbot", placement="pre"),
    _bart("whisper", "Whisper", placement="pre"),
    # --- mixtures of experts ----------------------------------------------------------------------
    Family("mixtral", "MixtralSparseMoeBlock", "MixtralModel", True, False, "rms", "pre", moe=Moe(_EXPERTS, _TOP_K, "intermediate_size"),
           container="block_sparse_moe"),
    Family("qwen2_moe", "Qwen2MoeSparseMoeBlock|Qwen2MoeMLP", "Qwen2MoeModel", True, False, "rms", "pre",
           moe=Moe("num_experts", _TOP_K, "moe_intermediate_size", "sparse_step", shared_width="shared_expert_intermediate_size",
                   shared_gate=True)),
    Family("qwen3_moe", "Qwen3MoeSparseMoeBlock|Qwen3MoeMLP", "Qwen3MoeModel", True, False, "rms", "pre",
           moe=Moe("num_experts|num_local_experts", _TOP_K, "moe_intermediate_size", "sparse_step")),
    Family("qwen3_next", "Qwen3NextSparseMoeBlock|Qwen3NextMLP", "Qwen3NextModel", True, False, "rms", "pre",
           moe=Moe("num_experts", _TOP_K, "moe_intermediate_size", "sparse_step", shared_width="shared_expert_intermediate_size",
                   shared_gate=True)),
    Family("olmoe", "OlmoeSparseMoeBlock", "OlmoeModel", True, False, "rms", "pre", moe=Moe("num_experts", _TOP_K, "intermediate_size")),
    Family("flex_olmo", "FlexOlmoSparseMoeBlock", "FlexOlmoModel", True, False, "rms", "output",
           moe=Moe("num_experts", _TOP_K, "intermediate_size")),
    Family("deepseek_v2", "DeepseekV2Moe|DeepseekV2MLP", "DeepseekV2Model", True, False, "rms", "pre",
           moe=Moe("n_routed_experts", _TOP_K, "moe_intermediate_size", "first_k_dense", shared="n_shared_experts"),
           unmodelled=(("mlp_bias", "DeepseekV2's mlp_bias biases the dense layers and shared experts but not the routed experts"),)),
    Family("deepseek_v3", "DeepseekV3MoE|DeepseekV3MLP", "DeepseekV3Model", True, False, "rms", "pre",
           moe=Moe("n_routed_experts", _TOP_K, "moe_intermediate_size", "first_k_dense", shared="n_shared_experts"),
           note="the router's e_score_correction_bias is a buffer, not a parameter; moe_layer_freq is not read by the code"),
    Family("glm4_moe", "Glm4MoeMoE|Glm4MoeMLP", "Glm4MoeModel", True, False, "rms", "pre",
           moe=Moe("n_routed_experts", _TOP_K, "moe_intermediate_size", "first_k_dense", shared="n_shared_experts"),
           note="the router's e_score_correction_bias is a buffer, not a parameter"),
    Family("granitemoe", "GraniteMoeMoE", "GraniteMoeModel", True, False, "rms", "pre", moe=Moe(_EXPERTS, _TOP_K, "intermediate_size"),
           container="block_sparse_moe"),
    Family("granitemoeshared", "GraniteMoeSharedMoE+GraniteMoeSharedMLP", "GraniteMoeSharedModel", True, False, "rms", "pre",
           moe=Moe(_EXPERTS, _TOP_K, "intermediate_size", shared_width="shared_intermediate_size"), container="block_sparse_moe"),
    Family("minimax", "MiniMaxSparseMoeBlock", "MiniMaxModel", True, False, "rms", "pre", moe=Moe(_EXPERTS, _TOP_K, "intermediate_size"),
           container="block_sparse_moe"),
    Family("phimoe", "PhimoeSparseMoeBlock", "PhimoeModel", True, False, "layer", "pre", moe=Moe(_EXPERTS, _TOP_K, "intermediate_size"),
           note="its LayerNorms take their epsilon from rms_norm_eps", container="block_sparse_moe"),
    Family("jamba", "JambaSparseMoeBlock|JambaMLP", "JambaModel", True, False, "rms", "pre",
           moe=Moe("num_experts", _TOP_K, "intermediate_size", "period_offset"), container="feed_forward"),
    Family("dbrx", "DbrxFFN", "DbrxModel", True, False, "layer", "pre", act=("ffn_config.ffn_act_fn.name",), d_model=("d_model",),
           d_ff=("ffn_config.ffn_hidden_size",), layers=("n_layers",),
           moe=Moe("ffn_config.moe_num_experts", "ffn_config.moe_top_k", "ffn_config.ffn_hidden_size"),
           note="DbrxConfig nests the FFN in ffn_config", container="transformer.blocks.{i}.ffn"),
    Family("llama4_text", "Llama4TextMoe|Llama4TextMLP", "Llama4TextModel", True, False, "rms", "pre",
           moe=Moe(_EXPERTS, _TOP_K, "intermediate_size", "moe_layers", shared_width="intermediate_size", dense_width="intermediate_size_mlp"),
           note="Llama4TextExperts runs every expert on every token (bmm; unrouted scores are sigmoid(−inf) = 0): "
           "its matmul FLOPs are those of top_k = num_local_experts; the router's sigmoid weights scale the input", container="feed_forward"),
    Family("gpt_oss", "GptOssMLP", "GptOssModel", True, True, "rms", "pre", act=(), act_fixed="swiglu_clamped",
           moe=Moe(_EXPERTS, _TOP_K, "intermediate_size", router_bias=True),
           note="GptOssExperts: gate_up_proj with biases, interleaved gate/up columns, "
           "(clamp(up, −limit, limit) + 1) ⊙ g·sigmoid(α·g), g = min(gate, limit); GptOssTopKRouter has a bias"),
    # --- refused ----------------------------------------------------------------------------------
    Family("albert", "AlbertLayer.ffn+ffn_output", "AlbertModel", False, True, "layer", "post",
           refused="ALBERT shares one layer group's weights across all num_hidden_layers; ffn-calc counts each layer's weights"),
    Family("jetmoe", "JetMoeMoE", "JetMoeModel", True, False, "rms", "pre",
           refused="JetMoeMoE adds one bias of hidden_size after combining its experts (and JetMoeMoA experts in the attention); "
           "ffn-calc has no such bias"),
    Family("bitnet", "BitNetMLP", "BitNetModel", True, False, "rms", "pre",
           refused="BitNetMLP normalises act(gate) ⊙ up with an RMSNorm of intermediate_size inside the FFN (ffn_sub_norm); "
           "ffn-calc has no such norm"),
    Family("apertus", "ApertusMLP", "ApertusModel", False, False, "rms", "pre",
           refused="Apertus's xIELU activation has learnable parameters (alpha_p, alpha_n); ffn-calc has no such activation"),
    Family("switch_transformers", "SwitchTransformersSparseMLP", "SwitchTransformersModel", False, False, "rms", "pre",
           refused="Switch Transformers route top-1 into expert_capacity buffers and alternate sparse layers by encoder/decoder_sparse_step; "
           "describe it with --experts, --top-k 1, --capacity-factor"),
    Family("nllb-moe", "NllbMoeSparseMLP", "NllbMoeModel", False, True, "layer", "pre",
           refused="NLLB-MoE's experts have biases and its router none, with top-2 capacity dropping; ffn-calc's --bias biases every linear alike"),
    Family("ernie4_5_moe", "Ernie4_5_MoeSparseMoeBlock", "Ernie4_5_MoeModel", True, False, "rms", "pre",
           refused="Ernie4_5_MoeStatics keeps e_score_correction_bias as a parameter per expert, and moe_layer_start/end_index bound the MoE layers"),
)  # fmt: skip

FAMILIES: dict[str, Family] = {f.model_type: f for f in _FAMILIES}


# The default, in its configuration class, of every key the entries above read (a key absent
# from a family's mapping has no default there: the config.json must give it). Generated by
# `python scripts/crosscheck_families.py --defaults` from transformers TRANSFORMERS.
CODE_DEFAULTS: dict[str, dict[str, object]] = {
    "llama": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "hidden_act": "silu", "mlp_bias": False},
    "mistral": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "hidden_act": "silu"},
    "ministral": {"hidden_size": 4096, "intermediate_size": 14336, "num_hidden_layers": 32, "hidden_act": "silu"},
    "qwen2": {"hidden_size": 4096, "intermediate_size": 22016, "num_hidden_layers": 32, "hidden_act": "silu"},
    "qwen3": {"hidden_size": 4096, "intermediate_size": 22016, "num_hidden_layers": 32, "hidden_act": "silu"},
    "gemma": {"hidden_size": 3072, "intermediate_size": 24576, "num_hidden_layers": 28, "hidden_act": "gelu_pytorch_tanh"},
    "gemma2": {"hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26, "hidden_activation": "gelu_pytorch_tanh"},
    "gemma3_text": {"hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26, "hidden_activation": "gelu_pytorch_tanh"},
    "vaultgemma": {"hidden_size": 2304, "intermediate_size": 9216, "num_hidden_layers": 26, "hidden_activation": "gelu_pytorch_tanh"},
    "cohere": {"hidden_size": 8192, "intermediate_size": 22528, "num_hidden_layers": 40, "hidden_act": "silu"},
    "cohere2": {"hidden_size": 8192, "intermediate_size": 22528, "num_hidden_layers": 40, "hidden_act": "silu"},
    "granite": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "hidden_act": "silu", "mlp_bias": False},
    "olmo": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "hidden_act": "silu"},
    "olmo2": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "hidden_act": "silu"},
    "olmo3": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "hidden_act": "silu"},
    "exaone4": {"hidden_size": 4096, "intermediate_size": 16384, "num_hidden_layers": 32, "hidden_act": "silu"},
    "helium": {"hidden_size": 2560, "intermediate_size": 7040, "num_hidden_layers": 24, "hidden_act": "silu", "mlp_bias": False},
    "smollm3": {"hidden_size": 2048, "intermediate_size": 11008, "num_hidden_layers": 36, "hidden_act": "silu", "mlp_bias": False},
    "seed_oss": {"hidden_size": 4096, "intermediate_size": 27648, "num_hidden_layers": 64, "hidden_act": "silu", "mlp_bias": False},
    "ernie4_5": {"hidden_size": 1024, "intermediate_size": 3072, "num_hidden_layers": 18, "hidden_act": "silu", "use_bias": False},
    "hunyuan_v1_dense": {"hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32, "hidden_act": "silu"},
    "diffllama": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 16, "hidden_act": "silu"},
    "stablelm": {"hidden_size": 2560, "intermediate_size": 6912, "num_hidden_layers": 32, "hidden_act": "silu"},
    "phi3": {"hidden_size": 3072, "intermediate_size": 8192, "num_hidden_layers": 32, "hidden_act": "silu"},
    "glm": {"hidden_size": 4096, "intermediate_size": 13696, "num_hidden_layers": 40, "hidden_act": "silu"},
    "glm4": {"hidden_size": 4096, "intermediate_size": 13696, "num_hidden_layers": 40, "hidden_act": "silu"},
    "gpt2": {"n_embd": 768, "n_layer": 12, "activation_function": "gelu_new"},
    "gpt_neox": {"hidden_size": 6144, "intermediate_size": 24576, "num_hidden_layers": 44, "hidden_act": "gelu"},
    "gptj": {"n_embd": 4096, "n_layer": 28, "activation_function": "gelu_new"},
    "gpt_neo": {"hidden_size": 2048, "num_layers": 24, "activation_function": "gelu_new"},
    "gpt_bigcode": {"n_embd": 768, "n_layer": 12, "activation_function": "gelu_pytorch_tanh"},
    "bloom": {"hidden_size": 64, "n_layer": 2},
    "falcon": {"hidden_size": 4544, "num_hidden_layers": 32, "activation": "gelu", "bias": False},
    "opt": {"hidden_size": 768, "ffn_dim": 3072, "num_hidden_layers": 12, "activation_function": "relu", "enable_bias": True},
    "codegen": {"n_embd": 4096, "n_layer": 28, "activation_function": "gelu_new"},
    "mpt": {"d_model": 2048, "n_layers": 24},
    "biogpt": {"hidden_size": 1024, "intermediate_size": 4096, "num_hidden_layers": 24, "hidden_act": "gelu"},
    "xglm": {"d_model": 1024, "ffn_dim": 4096, "num_layers": 24, "activation_function": "gelu"},
    "starcoder2": {"hidden_size": 3072, "intermediate_size": 12288, "num_hidden_layers": 30, "hidden_act": "gelu_pytorch_tanh", "use_bias": True},
    "persimmon": {"hidden_size": 4096, "intermediate_size": 16384, "num_hidden_layers": 36, "hidden_act": "relu2"},
    "phi": {"hidden_size": 2048, "intermediate_size": 8192, "num_hidden_layers": 24, "hidden_act": "gelu_new"},
    "nemotron": {"hidden_size": 6144, "intermediate_size": 24576, "num_hidden_layers": 32, "hidden_act": "relu2", "mlp_bias": False},
    "arcee": {"hidden_size": 2560, "intermediate_size": 18432, "num_hidden_layers": 32, "hidden_act": "relu2", "mlp_bias": False},
    "bert": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "hidden_act": "gelu"},
    "roberta": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "hidden_act": "gelu"},
    "xlm-roberta": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "hidden_act": "gelu"},
    "camembert": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "hidden_act": "gelu"},
    "electra": {"hidden_size": 256, "intermediate_size": 1024, "num_hidden_layers": 12, "hidden_act": "gelu"},
    "deberta": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "hidden_act": "gelu"},
    "deberta-v2": {"hidden_size": 1536, "intermediate_size": 6144, "num_hidden_layers": 24, "hidden_act": "gelu"},
    "mpnet": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "hidden_act": "gelu"},
    "distilbert": {"dim": 768, "hidden_dim": 3072, "n_layers": 6, "activation": "gelu"},
    "vit": {"hidden_size": 768, "intermediate_size": 3072, "num_hidden_layers": 12, "hidden_act": "gelu"},
    "modernbert": {"hidden_size": 768, "intermediate_size": 1152, "num_hidden_layers": 22, "hidden_activation": "gelu", "mlp_bias": False},
    "t5": {"d_model": 512, "d_ff": 2048, "num_layers": 6, "feed_forward_proj": "relu", "num_decoder_layers": 6},
    "mt5": {"d_model": 512, "d_ff": 1024, "num_layers": 8, "feed_forward_proj": "gated-gelu", "num_decoder_layers": 8},
    "umt5": {"d_model": 512, "d_ff": 1024, "num_layers": 8, "feed_forward_proj": "gated-gelu", "num_decoder_layers": 8},
    "longt5": {"d_model": 512, "d_ff": 2048, "num_layers": 6, "feed_forward_proj": "relu", "num_decoder_layers": 6},
    "bart": {
        "d_model": 1024,
        "encoder_ffn_dim": 4096,
        "encoder_layers": 12,
        "activation_function": "gelu",
        "decoder_layers": 12,
        "decoder_ffn_dim": 4096,
    },
    "mbart": {
        "d_model": 1024,
        "encoder_ffn_dim": 4096,
        "encoder_layers": 12,
        "activation_function": "gelu",
        "decoder_layers": 12,
        "decoder_ffn_dim": 4096,
    },
    "marian": {
        "d_model": 1024,
        "encoder_ffn_dim": 4096,
        "encoder_layers": 12,
        "activation_function": "gelu",
        "decoder_layers": 12,
        "decoder_ffn_dim": 4096,
    },
    "pegasus": {
        "d_model": 1024,
        "encoder_ffn_dim": 4096,
        "encoder_layers": 12,
        "activation_function": "gelu",
        "decoder_layers": 12,
        "decoder_ffn_dim": 4096,
    },
    "m2m_100": {
        "d_model": 1024,
        "encoder_ffn_dim": 4096,
        "encoder_layers": 12,
        "activation_function": "relu",
        "decoder_layers": 12,
        "decoder_ffn_dim": 4096,
    },
    "blenderbot": {
        "d_model": 2560,
        "encoder_ffn_dim": 10240,
        "encoder_layers": 2,
        "activation_function": "gelu",
        "decoder_layers": 24,
        "decoder_ffn_dim": 10240,
    },
    "whisper": {
        "d_model": 384,
        "encoder_ffn_dim": 1536,
        "encoder_layers": 4,
        "activation_function": "gelu",
        "decoder_layers": 4,
        "decoder_ffn_dim": 1536,
    },
    "mixtral": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "hidden_act": "silu",
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
    },
    "qwen2_moe": {
        "hidden_size": 2048,
        "intermediate_size": 5632,
        "num_hidden_layers": 24,
        "hidden_act": "silu",
        "num_experts": 60,
        "num_experts_per_tok": 4,
        "moe_intermediate_size": 1408,
        "shared_expert_intermediate_size": 5632,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
    },
    "qwen3_moe": {
        "hidden_size": 2048,
        "intermediate_size": 6144,
        "num_hidden_layers": 24,
        "hidden_act": "silu",
        "num_experts": 128,
        "num_experts_per_tok": 8,
        "moe_intermediate_size": 768,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
    },
    "qwen3_next": {
        "hidden_size": 2048,
        "intermediate_size": 5632,
        "num_hidden_layers": 48,
        "hidden_act": "silu",
        "num_experts": 512,
        "num_experts_per_tok": 10,
        "moe_intermediate_size": 512,
        "shared_expert_intermediate_size": 512,
        "decoder_sparse_step": 1,
        "mlp_only_layers": [],
    },
    "olmoe": {
        "hidden_size": 2048,
        "intermediate_size": 2048,
        "num_hidden_layers": 16,
        "hidden_act": "silu",
        "num_experts": 64,
        "num_experts_per_tok": 8,
    },
    "flex_olmo": {
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "hidden_act": "silu",
        "num_experts": 7,
        "num_experts_per_tok": 5,
    },
    "deepseek_v2": {
        "q_lora_rank": 1536,  # MLA's ranks and head dims (the attention's shape, for explain)
        "kv_lora_rank": 512,
        "qk_nope_head_dim": 128,
        "qk_rope_head_dim": 64,
        "v_head_dim": 128,
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "hidden_act": "silu",
        "n_routed_experts": 64,
        "moe_intermediate_size": 1407,
        "n_shared_experts": 2,
        "first_k_dense_replace": 0,
    },
    "deepseek_v3": {
        "q_lora_rank": 1536,  # MLA's ranks and head dims (the attention's shape, for explain)
        "kv_lora_rank": 512,
        "qk_nope_head_dim": 128,
        "qk_rope_head_dim": 64,
        "v_head_dim": 128,
        "hidden_size": 7168,
        "intermediate_size": 18432,
        "num_hidden_layers": 61,
        "hidden_act": "silu",
        "n_routed_experts": 256,
        "num_experts_per_tok": 8,
        "moe_intermediate_size": 2048,
        "n_shared_experts": 1,
        "first_k_dense_replace": 3,
    },
    "glm4_moe": {
        "hidden_size": 4096,
        "intermediate_size": 10944,
        "num_hidden_layers": 46,
        "hidden_act": "silu",
        "n_routed_experts": 128,
        "num_experts_per_tok": 8,
        "moe_intermediate_size": 1408,
        "n_shared_experts": 1,
        "first_k_dense_replace": 1,
    },
    "granitemoe": {
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "hidden_act": "silu",
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
    },
    "granitemoeshared": {
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "hidden_act": "silu",
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
        "shared_intermediate_size": 0,
    },
    "minimax": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "hidden_act": "silu",
        "num_local_experts": 8,
        "num_experts_per_tok": 2,
    },
    "phimoe": {
        "hidden_size": 4096,
        "intermediate_size": 6400,
        "num_hidden_layers": 32,
        "hidden_act": "silu",
        "num_local_experts": 16,
        "num_experts_per_tok": 2,
    },
    "jamba": {
        "hidden_size": 4096,
        "intermediate_size": 14336,
        "num_hidden_layers": 32,
        "hidden_act": "silu",
        "num_experts": 16,
        "num_experts_per_tok": 2,
        "expert_layer_period": 2,
        "expert_layer_offset": 1,
    },
    "dbrx": {
        "d_model": 2048,
        "ffn_config.ffn_hidden_size": 3584,
        "n_layers": 24,
        "ffn_config.ffn_act_fn.name": "silu",
        "ffn_config.moe_num_experts": 4,
        "ffn_config.moe_top_k": 1,
    },
    "llama4_text": {
        "hidden_size": 5120,
        "intermediate_size": 8192,
        "num_hidden_layers": 48,
        "hidden_act": "silu",
        "num_local_experts": 16,
        "num_experts_per_tok": 1,
        "interleave_moe_layer_step": 1,
        "intermediate_size_mlp": 16384,
    },
    "gpt_oss": {
        "hidden_size": 2880,
        "intermediate_size": 2880,
        "num_hidden_layers": 36,
        "num_local_experts": 128,
        "num_experts_per_tok": 4,
        "swiglu_alpha": 1.702,
        "swiglu_limit": 7.0,
    },
}
