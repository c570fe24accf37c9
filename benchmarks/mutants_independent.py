"""An independent mutant catalogue (issue 20 part 3): single-line bugs in the newer areas —
expert parallelism, quantized weight formats, mixed dense/MoE stacks, the shared-expert gate,
dtype defaults, the config.json family table, the cost table, finite differences and the
training step, collectives, the float64 reference and the two new LayerNorms — written without
reading the project's own catalogue (mutants_catalogue.py), with the same record type.

    python benchmarks/mutants.py --catalogue independent [--check] [--only ID,…] [--jobs N] [--json FILE]

Model mutants change a predicted number; `definition` says why `verify` cannot observe it
(empty: it can, and `commands` are verify commands that would show it). Verifier mutants weaken
`verify` (a check loosened, dropped or compared with the prediction itself); their commands are
the runs the weakened check takes part in.
"""

from __future__ import annotations

from mutants_catalogue import MODEL, VERIFIER, Mutant

EP = "verify 2 4 8 --experts 4 --top-k 2 --ep 2"
EP_SEQ = "verify 1 4 8 --experts 4 --top-k 2 --ep 2"  # BATCH 1 does not divide: the sequence is split
TP = "verify 2 4 8 --tp 2"
TP_BACK = "verify 2 4 8 --tp 2 --backward"
TP_SP = "verify 2 4 8 --tp 2 --sequence-parallel"
TP_UNEVEN = "verify 1 1 8 --tp 3 --d-ff 12"  # 8 output elements over 3 ranks: uneven ring chunks
STACK = "verify 2 4 8 --experts 4 --top-k 2 --dense-layers 2 --dense-d-ff 16 -L 3"
# The same stack at a size whose activations pass the peak check's absolute allowance (320 KiB):
# on the small one a model peak off by a layer's activations (a few KB) stays inside it.
STACK_WIDE = "verify 4 256 64 --d-ff 128 --experts 4 --top-k 2 --dense-layers 2 --dense-d-ff 512 -L 3"
STACK_TP = "verify 2 4 8 --experts 4 --top-k 2 --dense-layers 1 --dense-d-ff 16 --tp 2"
GATE = "verify 2 4 8 --experts 4 --top-k 2 --shared-experts 2 --shared-expert-gate"
GATE_BACK = GATE + " --backward"
MOE_BACK = "verify 2 4 8 --experts 4 --top-k 2 --backward"
BF16 = "verify 2 4 8 --dtype bfloat16"
NOBIAS_BACK = "verify 2 4 8 --norm pre --norm-type layer_nobias --backward"
NONPARAM_BACK = "verify 2 4 8 --norm pre --norm-type layer_nonparam --backward"
NONPARAM_POST = "verify 2 4 8 --norm post --norm-type layer_nonparam"
DENSE_BACK = "verify 2 4 8 --backward"
GLU_BACK = "verify 2 4 8 -a swiglu --norm pre --norm-type layer_nobias --backward"
FAMILY_DS = "verify 1 4 --config tests/data/families/deepseek_v3.json"
FAMILY_QWEN = "verify 1 4 --config tests/data/families/qwen2_moe.json"
FAMILY_COHERE = "verify 1 4 --config tests/data/families/cohere.json --norm pre"
FAMILY_OLMO = "verify 1 4 --config tests/data/families/olmo.json --norm pre"

# Why verify cannot see a number, said once per kind.
RUNS_WHAT_IT_READS = "verify runs the layer the option or file resolves to; a wrong reading changes prediction and run alike"
SAME_CONVENTION = "the verifier tallies FLOPs with the same cost entry (convention × elements observed): both sides move together"
INPUT_QUANT = (
    "the bytes a W4A4/W8A8 product reads its input in are the roofline's: verify dequantizes the weights only, "
    "its products take their input in --dtype"
)

MUTANTS: tuple[Mutant, ...] = (
    # --- expert parallelism: model/expert_parallel.py --------------------------------------------
    Mutant("I-ep-shard-keeps-all-experts", MODEL, "ffn_calc/model/expert_parallel.py",
           "shape=(local, *t.shape[1:]), experts=local,", "shape=(t.experts, *t.shape[1:]), experts=local,",
           "a rank's expert weights keep every expert's rows (E, not E/N): its parameters and weight bytes are the whole layer's",
           (EP,)),
    Mutant("I-ep-active-not-capped", MODEL, "ffn_calc/model/expert_parallel.py",
           "experts=local, active=min(k, local))", "experts=local, active=k)",
           "a rank's active expert params count k experts even when it holds fewer than k (E/N < k)",
           (EP,), "active parameters per token are a definition (elements × active / experts); verify --ep checks parameters, not active ones"),
    Mutant("I-ep-tokens-not-split", MODEL, "ffn_calc/model/expert_parallel.py",
           'return replace(cfg, batch=cfg.batch // ranks), "batch"', 'return replace(cfg, batch=cfg.batch), "batch"',
           "the batch is not split over the EP ranks: each rank's tokens, FLOPs and activations are N times too many",
           (EP,)),
    Mutant("I-ep-seq-split-off-by-rank", MODEL, "ffn_calc/model/expert_parallel.py",
           'return replace(cfg, seq_len=cfg.seq_len // ranks), "sequence"', 'return replace(cfg, seq_len=cfg.seq_len // ranks + 1), "sequence"',
           "an off-by-one in the sequence split: each rank predicts one token per sequence more than it holds",
           (EP_SEQ,)),
    Mutant("I-ep-a2a-counts-self", MODEL, "ffn_calc/model/expert_parallel.py",
           "sent = _ceil_div((ranks - 1) * tensor, ranks)", "sent = _ceil_div(ranks * tensor, ranks)",
           "the all-to-all counts the rows that stay on their own rank as sent: T·k·d·bytes instead of (N − 1)/N of it",
           (EP,)),
    Mutant("I-ep-a2a-forgets-top-k", MODEL, "ffn_calc/model/expert_parallel.py",
           "rows = cfg.tokens * cfg.top_k", "rows = cfg.tokens",
           "the all-to-all moves one row per token instead of one per (token, expert) pair: k times too few bytes",
           (EP,)),
    # --- verifier: verify --ep and --tp (verifier/parallel.py) ------------------------------------
    Mutant("I-vp-ep-params-always-ok", VERIFIER, "ffn_calc/verifier/parallel.py",
           "count, count == rank_pred.totals.params))", "count, True))",
           "verify --ep's per-rank parameter count no longer fails",
           (EP,)),
    Mutant("I-vp-ep-dispatch-self-compare", VERIFIER, "ffn_calc/verifier/parallel.py",
           "ex.dispatch_bytes, sent, sent == ex.dispatch_bytes,", "ex.dispatch_bytes, sent, ex.dispatch_bytes == ex.dispatch_bytes,",
           "the dispatch bytes read off the send buffers are compared with the model's all-to-all of the histogram itself, not with the buffers",
           (EP, EP_SEQ)),
    Mutant("I-vp-ep-output-vs-itself", VERIFIER, "ffn_calc/verifier/parallel.py",
           "ok, diff = _close(whole, forward(Silent(), bare, ffn_params, x), rtol)", "ok, diff = _close(whole, whole, rtol)",
           "the EP ranks' combined output is compared with itself instead of the whole layer's output",
           (EP, EP_SEQ)),
    Mutant("I-vp-ep-macs-sum-always-ok", VERIFIER, "ffn_calc/verifier/parallel.py",
           "observed_macs == predicted, detail=", "True, detail=",
           "the Σ of the EP ranks' observed MACs is no longer judged against N × a rank's",
           (EP,)),
    Mutant("I-vp-tp-flops-from-prediction", VERIFIER, "ffn_calc/verifier/parallel.py",
           "flops = MULTIPLY_ADD.flops * macs + sum(o.elementwise_flops for o in rec.stages.values())",
           "flops = MULTIPLY_ADD.flops * macs + rank_pred.totals.elementwise_flops",
           "a TP rank's observed FLOPs take their elementwise part from the prediction: half the check compares the prediction with itself",
           (TP, TP_SP)),
    Mutant("I-vp-tp-bytes-at-most", VERIFIER, "ffn_calc/verifier/parallel.py",
           "c.bytes_sent_per_rank, b, b == c.bytes_sent_per_rank))", "c.bytes_sent_per_rank, b, b <= c.bytes_sent_per_rank))",
           "a rank's ring bytes pass when they are at most the prediction: an over-count of the collective goes unseen",
           (TP, TP_SP, TP_BACK)),
    Mutant("I-vp-tp-uneven-tolerance", VERIFIER, "ffn_calc/verifier/parallel.py",
           "ok = 0 <= c.bytes_sent_per_rank - mean < 1", "ok = 0 <= c.bytes_sent_per_rank - mean < ranks * c.tensor_bytes",
           "uneven ring chunks: the prediction may exceed the observed mean by a whole tensor per rank",
           (TP_UNEVEN,)),
    # --- collectives: model/parallel.py ------------------------------------------------------------
    Mutant("I-mp-allreduce-one-pass", MODEL, "ffn_calc/model/parallel.py",
           "full = _ceil_div(2 * (ranks - 1) * tensor, ranks)", "full = _ceil_div((ranks - 1) * tensor, ranks)",
           "a ring all-reduce counted as one pass (a reduce-scatter) instead of reduce-scatter + all-gather",
           (TP, TP_BACK)),
    Mutant("I-mp-sp-counts-own-shard", MODEL, "ffn_calc/model/parallel.py",
           "half = _ceil_div((ranks - 1) * tensor, ranks)", "half = _ceil_div(ranks * tensor, ranks)",
           "sequence parallelism's all-gather and reduce-scatter count the rank's own shard as sent",
           (TP_SP,)),
    Mutant("I-mp-tensor-d-ff", MODEL, "ffn_calc/model/parallel.py",
           "tensor = cfg.tokens * cfg.d_model * cfg.dtype_bytes", "tensor = cfg.tokens * cfg.d_ff * cfg.dtype_bytes",
           "the collective's tensor sized by d_ff (the hidden activation) instead of d_model (the partial output)",
           (TP,)),
    Mutant("I-mp-dense-d-ff-not-split", MODEL, "ffn_calc/model/parallel.py",
           "dense_d_ff=cfg.dense_d_ff // ranks,", "dense_d_ff=cfg.dense_d_ff,",
           "a mixed stack under --tp: the dense layers' d_ff is not divided by the ranks (each rank holds them whole)",
           (STACK_TP,)),
    # --- mixed dense/MoE stacks: model/forward.py, model/layer.py ----------------------------------
    Mutant("I-fg-params-forget-layers", MODEL, "ffn_calc/model/forward.py",
           "params=sum(g.config.layers * g.totals.params for g in groups),", "params=sum(g.totals.params for g in groups),",
           "the model's parameters sum one layer per group instead of layers × per-layer",
           (STACK,)),
    Mutant("I-fg-flops-matmul-only", MODEL, "ffn_calc/model/forward.py",
           "flops=sum(g.config.layers * g.totals.flops for g in groups),", "flops=sum(g.config.layers * g.totals.matmul_flops for g in groups),",
           "the model's FLOPs sum the groups' matmul FLOPs (elementwise work dropped)",
           (STACK,)),
    Mutant("I-fg-peak-sums-activations", MODEL, "ffn_calc/model/forward.py",
           "peak_bytes=weight_bytes + max(g.peak_activation_bytes for g in groups),",
           "peak_bytes=weight_bytes + sum(g.peak_activation_bytes for g in groups),",
           "the model's peak holds every group's activations at once instead of the largest layer's",
           (STACK, STACK_WIDE)),
    Mutant("I-fg-dense-width-is-expert-width", MODEL, "ffn_calc/model/layer.py",
           "self, d_ff=self.dense_d_ff, d_ff_rule=", "self, d_ff=self.d_ff, d_ff_rule=",
           "the dense layers of a mixed stack get the experts' d_ff instead of --dense-d-ff",
           (STACK,), RUNS_WHAT_IT_READS + " (verify runs cfg.groups' dense layer, wrong width and all)"),
    # --- the shared-expert gate: model/forward.py --------------------------------------------------
    Mutant("I-sg-gate-per-expert", MODEL, "ffn_calc/model/forward.py",
           "w = self.tensor(names.W_SHARED_EXPERT_GATE, (d, 1), \"weight\")",
           "w = self.tensor(names.W_SHARED_EXPERT_GATE, (d, cfg.shared_experts), \"weight\")",
           "the gate's weight gets one column per shared expert instead of one scalar logit per token",
           (GATE,)),
    Mutant("I-sg-sigmoid-per-element", MODEL, "ffn_calc/model/forward.py",
           "flops = GATE_SIGMOID.flops * n + GATE_SCALE.flops * n * d", "flops = GATE_SIGMOID.flops * n * d + GATE_SCALE.flops * n * d",
           "the sigmoid is counted once per element of the shared output instead of once per token",
           (GATE,)),
    Mutant("I-sg-backward-sigmoid-per-element", MODEL, "ffn_calc/model/training.py",
           "flops = conv.GATE_SCALE_BACKWARD.flops * rows * width + conv.GATE_SIGMOID_BACKWARD.flops * rows",
           "flops = conv.GATE_SCALE_BACKWARD.flops * rows * width + conv.GATE_SIGMOID_BACKWARD.flops * rows * width",
           "the gate's sigmoid backward is counted per element instead of per token",
           (GATE_BACK,)),
    # --- dtype defaults: model/dtypes.py, model/layer.py, inputs/config_json.py, presets -----------
    Mutant("I-dt-bf16-32-bits", MODEL, "ffn_calc/model/dtypes.py",
           'DType("bfloat16", 16,', 'DType("bfloat16", 32,',
           "bfloat16 sized as 32 bits: every weight and activation byte count doubles",
           (BF16,)),
    Mutant("I-dt-default-float64", MODEL, "ffn_calc/model/layer.py",
           'dtype: str = "float32"', 'dtype: str = "float64"',
           "the default dtype flipped to float64 (float32 is documented): bytes double when --dtype is not given",
           ("verify 2 4 8",), RUNS_WHAT_IT_READS + " (verify runs the default dtype too)"),
    Mutant("I-dt-text-config-first", MODEL, "ffn_calc/inputs/config_json.py",
           "for source in (raw, cfg):", "for source in (cfg, raw):",
           "a multimodal file's text_config torch_dtype wins over the top level's",
           (FAMILY_DS,), RUNS_WHAT_IT_READS),
    Mutant("I-dt-torch-prefix-kept", MODEL, "ffn_calc/inputs/config_json.py",
           'name = value.removeprefix("torch.")', "name = value",
           'torch_dtype "torch.bfloat16" is not recognised: the default float32 is used',
           (FAMILY_DS,), RUNS_WHAT_IT_READS),
    Mutant("I-dt-preset-mixtral-fp32", MODEL, "ffn_calc/catalogue/presets.py",
           'experts=8, top_k=2, norm_type="rms", dtype="bfloat16", attention=(32, 8, 128)),',
           'experts=8, top_k=2, norm_type="rms", dtype="float32", attention=(32, 8, 128)),',
           "mixtral-8x7b's preset dtype flipped to float32 (its config.json says bfloat16): weight bytes double",
           (), RUNS_WHAT_IT_READS + " (and the preset is far too large to run)"),
    # --- config.json family table: catalogue/families.py, inputs/config_json.py ---------------------
    Mutant("I-fm-cohere-norm-with-bias", MODEL, "ffn_calc/catalogue/families.py",
           '_llama("cohere", "Cohere", norm="layer_nobias", placement="parallel"),',
           '_llama("cohere", "Cohere", norm="layer", placement="parallel"),',
           "Cohere's norm read as a full LayerNorm: a β of d_model that CohereLayerNorm does not have",
           (FAMILY_COHERE,), RUNS_WHAT_IT_READS),
    Mutant("I-fm-olmo-norm-affine", MODEL, "ffn_calc/catalogue/families.py",
           '_llama("olmo", "Olmo", norm="layer_nonparam"),', '_llama("olmo", "Olmo", norm="layer_nobias"),',
           "OLMo-1's parameter-free LayerNorm read as one with γ: d_model parameters too many",
           (FAMILY_OLMO,), RUNS_WHAT_IT_READS),
    Mutant("I-fm-first-k-dense-off-by-one", MODEL, "ffn_calc/inputs/config_json.py",
           "is_moe = [i >= first for i in range(layers)]", "is_moe = [i > first for i in range(layers)]",
           "first_k_dense_replace off by one: one more dense layer and one less MoE layer",
           (FAMILY_DS,), RUNS_WHAT_IT_READS),
    Mutant("I-fm-shared-width-over-d-model", MODEL, "ffn_calc/inputs/config_json.py",
           "shared = shared_width // width", "shared = shared_width // d_model",
           "a shared expert's width divided by d_model instead of the expert width: the wrong number of shared experts",
           (FAMILY_QWEN,), RUNS_WHAT_IT_READS),
    # --- quantized weight formats: model/weight_formats.py, inputs/quantization.py -----------------
    Mutant("I-wf-gptq-qzeros-bytes-not-ints", MODEL, "ffn_calc/model/weight_formats.py",
           "(groups, n * bits // 32)", "(groups, n * bits // 8)",
           "GPTQ's packed zeros sized in bytes, not int32 words: 4× their bytes",
           ("verify 2 8 64 --d-ff 128 -a swiglu --weight-dtype gptq_int4 --group-size 32",)),
    Mutant("I-wf-awq-per-channel-groups", MODEL, "ffn_calc/model/weight_formats.py",
           "groups = k // (g or k)", "groups = k // (g or 1)",
           "AWQ's group_size -1 (one group over K) read as groups of 1: K scales and zeros per output",
           ("verify 2 8 64 --d-ff 128 -a swiglu --weight-dtype awq_int4 --group-size 0",)),
    Mutant("I-wf-nf4-blocks-floor", MODEL, "ffn_calc/model/weight_formats.py",
           "blocks = -(values // -g)", "blocks = values // g",
           "NF4's absmax blocks rounded down: the last partial block's absmax is lost",
           ("verify 2 8 72 --d-ff 100 -a swiglu --weight-dtype nf4",)),  # 72 × 100 values: the last block of 64 is short
    Mutant("I-wf-mxfp4-scales-per-16", MODEL, "ffn_calc/model/weight_formats.py",
           '(n, k // MX_BLOCK), "one E8M0', '(n, k // NV_BLOCK), "one E8M0',
           "MXFP4's E8M0 scales counted per 16 values (NVFP4's block) instead of per 32",
           ("verify 2 8 64 --d-ff 128 -a swiglu --weight-dtype mxfp4",)),
    Mutant("I-wf-nvfp4-input-scale-fp32", MODEL, "ffn_calc/model/weight_formats.py",
           "return k // 2 + k // NV_BLOCK", "return k // 2 + 4 * (k // NV_BLOCK)",
           "NVFP4's quantized input row counts its E4M3 scales as float32",
           (), INPUT_QUANT),
    Mutant("I-wf-fp8-block-floor", MODEL, "ffn_calc/model/weight_formats.py",
           "(ceil(n / g), ceil(k / g))", "(n // g, k // g)",
           "FP8 block scales rounded down: the edges' short blocks get no scale",
           ("verify 2 8 64 --d-ff 128 -a swiglu --weight-dtype fp8_block",)),
    Mutant("I-wf-fp8-row-input-no-scale", MODEL, "ffn_calc/model/weight_formats.py",
           "return k + 4  # quantize_fp8_per_row", "return k  # quantize_fp8_per_row",
           "fbgemm FP8's quantized input row drops its float32 per-token scale",
           (), INPUT_QUANT),
    Mutant("I-qz-bnb-blocksize-128", MODEL, "ffn_calc/inputs/quantization.py",
           'return ("nf4_dq" if double else "nf4"), 64, read, notes', 'return ("nf4_dq" if double else "nf4"), 128, read, notes',
           "bitsandbytes' Linear4bit blocksize read as 128 instead of 64: half the absmax bytes",
           (), RUNS_WHAT_IT_READS),
    Mutant("I-qz-group-minus-one", MODEL, "ffn_calc/inputs/quantization.py",
           "return 0 if g == -1 else g", "return 1 if g == -1 else g",
           "group_size -1 (one group over all of K) read as groups of 1",
           (), RUNS_WHAT_IT_READS),
    # --- the cost table: model/conventions.py ------------------------------------------------------
    Mutant("I-cv-sigmoid-3", MODEL, "ffn_calc/model/conventions.py",
           'GATE_SIGMOID = _cost("shared_expert_gate_sigmoid", "sigmoid gate", 4,',
           'GATE_SIGMOID = _cost("shared_expert_gate_sigmoid", "sigmoid gate", 3,',
           "the sigmoid counted as 3 FLOPs (negate forgotten) instead of 4",
           (GATE,), SAME_CONVENTION),
    Mutant("I-cv-renorm-2k", MODEL, "ffn_calc/model/conventions.py",
           '"top-k renormalise", -1, "token"', '"top-k renormalise", 0, "token"',
           "top-k renormalisation counted 2·k instead of 2·k − 1 per token",
           (EP,), SAME_CONVENTION),
    Mutant("I-cv-combine-backward-2", MODEL, "ffn_calc/model/conventions.py",
           '"weighted combine, backward", 3, "element"', '"weighted combine, backward", 2, "element"',
           "the combine's backward counted 2 FLOPs per routed element instead of 3",
           (MOE_BACK,), SAME_CONVENTION),
    Mutant("I-cv-index-int32", MODEL, "ffn_calc/model/conventions.py",
           "ROUTING_INDEX_BYTES = 8", "ROUTING_INDEX_BYTES = 4",
           "the saved routing indices counted as int32 where they are int64",
           (MOE_BACK,)),
    # --- the two new LayerNorms and norm storage: model/norms.py ------------------------------------
    Mutant("I-nm-nobias-keeps-beta", MODEL, "ffn_calc/model/norms.py",
           '"layernorm_nobias", "LN", (names.LN_GAMMA,),', '"layernorm_nobias", "LN", (names.LN_GAMMA, names.LN_BETA),',
           "layer_nobias declared with a β: d_model parameters too many, and a weight the kernel never reads",
           (NOBIAS_BACK,)),
    Mutant("I-nm-nonparam-flops-7", MODEL, "ffn_calc/model/norms.py",
           '5, 2, "mean 1, centre 1', '7, 2, "mean 1, centre 1',
           "layer_nonparam counted with LayerNorm's affine (7 FLOPs per element instead of 5)",
           (NONPARAM_POST,), SAME_CONVENTION + " (the norm registry's)"),
    Mutant("I-nm-nonparam-weight-grad", MODEL, "ffn_calc/model/norms.py",
           "7, 2, 0, ", "7, 2, 2, ",
           "layer_nonparam's weight gradients counted as 2 FLOPs per element: it has no weights",
           ("verify 2 4 8 --norm pre --norm-type layer_nonparam --backward --no-input-grad",), SAME_CONVENTION + " (the norm registry's)"),
    Mutant("I-nm-stats-float16", MODEL, "ffn_calc/model/norms.py",
           "STAT_BYTES = 4  # per-row", "STAT_BYTES = 2  # per-row",
           "a norm's saved per-row statistics counted as 2 bytes each, where they are float32",
           (NOBIAS_BACK, NONPARAM_BACK)),
    # --- finite differences and the training step: verifier/training_step.py, backward.py ----------
    Mutant("I-ts-fd-tolerance-100x", VERIFIER, "ffn_calc/verifier/training_step.py",
           'f"{err:.1e}", err <= tol, "tolerance")', 'f"{err:.1e}", err <= 100 * tol, "tolerance")',
           "the finite-difference tolerance loosened 100×: a gradient off by a percent passes",
           (DENSE_BACK, NOBIAS_BACK, GLU_BACK)),
    Mutant("I-ts-fd-one-sample", VERIFIER, "ffn_calc/verifier/backward.py",
           "size=min(samples, flat.size), replace=False", "size=min(1, flat.size), replace=False",
           "finite differences probe one entry per tensor instead of up to 40: most gradient entries are never checked",
           (DENSE_BACK, NOBIAS_BACK, GLU_BACK)),
    Mutant("I-ts-fd-never-dx", VERIFIER, "ffn_calc/verifier/backward.py",
           '{**p, "x": x} if input_grad else dict(p)', "dict(p) if input_grad else dict(p)",
           "finite differences never check the input gradient dx",
           (DENSE_BACK, NOBIAS_BACK, NONPARAM_BACK)),
    Mutant("I-ts-fd-gamma-at-one", VERIFIER, "ffn_calc/verifier/training_step.py",
           "small_p[name] += 0.1 * np.random", "small_p[name] += 0.0 * np.random",
           "finite differences run with γ = 1 and β = 0 only: a backward that drops γ·dy is not seen",
           (NOBIAS_BACK, GLU_BACK)),
    Mutant("I-ts-saved-bytes-at-most", VERIFIER, "ffn_calc/verifier/training_step.py",
           "s.bytes, arr.nbytes, arr.nbytes == s.bytes))", "s.bytes, arr.nbytes, arr.nbytes <= s.bytes))",
           "a saved tensor's bytes pass when the prediction over-counts them",
           (MOE_BACK, NOBIAS_BACK)),
    Mutant("I-ts-bytes-per-param-self", VERIFIER, "ffn_calc/verifier/training_step.py",
           '"bytes_per_param": ((weight_bytes + grad_bytes + opt.state_bytes + opt.master_bytes) // max(1, params),',
           '"bytes_per_param": (t.bytes_per_param,',
           "bytes_per_param is 'observed' as the prediction itself",
           (DENSE_BACK,)),
    Mutant("I-ts-peak-temporaries-30", VERIFIER, "ffn_calc/verifier/training_step.py",
           "allowance = beyond + never_read + scratch", "allowance = 10 * (beyond + never_read + scratch)",
           "the training step's peak allowance 10 × wider than what the step held beyond the model's count",
           (DENSE_BACK, MOE_BACK)),
    # --- the float64 reference: verifier/properties.py, verifier/reference.py ----------------------
    Mutant("I-rf-tolerance-sqrt-dropped", VERIFIER, "ffn_calc/verifier/properties.py",
           "return 16 * u + 8 * math.sqrt(widest) * u_acc +", "return 16 * u + 8 * widest * u_acc +",
           "the reference tolerance grows with K instead of √K: far looser for a wide layer",
           ("verify 2 4 64 --d-ff 1024",)),
    Mutant("I-rf-bound-vs-got", VERIFIER, "ffn_calc/verifier/properties.py",
           "bound = tol * max(1.0, float(np.max(np.abs(expected))))", "bound = tol * max(1.0, float(np.max(np.abs(got))), diff / tol)",
           "the reference bound scales with the difference itself: the check can never fail",
           ("verify 2 4 8", GATE, NONPARAM_POST)),
    Mutant("I-rf-routing-from-fast-path", VERIFIER, "ffn_calc/verifier/properties.py",
           "keep = np.ones(m, bool) if keep is None else keep", "keep = np.zeros(m, bool)",
           "the float64 reference is given the fast path's experts for every token: a wrong top-k choice is never seen",
           (GATE, EP, "verify 2 4 8 --experts 8 --top-k 2")),
)  # fmt: skip


def by_id() -> dict[str, Mutant]:
    table = {m.id: m for m in MUTANTS}
    if len(table) != len(MUTANTS):
        raise ValueError("duplicate mutant ids in the independent catalogue")
    return table
