"""A fresh mutant catalogue: single-line bugs in the areas the other two catalogues plant little in —
data parallelism (ZeRO stages, FSDP names, bytes sent, node size), the pipeline (layers per stage,
bubble, activations held, point-to-point bytes), the training step's options (mixed precision,
master weights, AdamW, 8-bit Adam blocks, recompute, dropout), the attention around the FFN, the
config.json family table and its interleaving keys, quantization_config, the GPU table and the
roofline's units, the API's sweep rows, and the parsers and bounds of inputs/ — written without
reading mutants_catalogue.py's or mutants_independent.py's entries, with the same record type.

    python benchmarks/mutants.py --catalogue fresh [--check] [--only ID,…] [--jobs N] [--json FILE]

Model mutants change a predicted number; `definition` says why `verify` cannot observe it (empty:
it can, and `commands` are verify commands that would show it — for --dp and --pp, commands verify
refuses today, which the benchmark reports unsupported: the gap they name). Verifier mutants weaken
`verify` (a check loosened or a boundary moved); their commands are the runs the check takes part in.
"""

from __future__ import annotations

from mutants_catalogue import MODEL, VERIFIER, Mutant

DP = "ffn_calc/model/data_parallel.py"
PP = "ffn_calc/model/pipeline.py"
TR = "ffn_calc/model/training.py"
TO = "ffn_calc/model/training_options.py"
AT = "ffn_calc/model/attention.py"
LA = "ffn_calc/model/layer.py"
FA = "ffn_calc/catalogue/families.py"
CJ = "ffn_calc/inputs/config_json.py"
QU = "ffn_calc/inputs/quantization.py"
WF = "ffn_calc/model/weight_formats.py"
GP = "ffn_calc/catalogue/gpus.py"
RF = "ffn_calc/model/roofline.py"
SW = "ffn_calc/api/sweep_executor.py"
KW = "ffn_calc/api/keywords.py"
VA = "ffn_calc/inputs/values.py"
LI = "ffn_calc/inputs/limits.py"

# verify does not run data or pipeline parallelism yet (--dp is refused, --pp is not an option):
# these commands are what it would have to run; the benchmark lists them as unsupported.
V_DP = ("verify 2 4 8 --d-ff 24 --backward --dp 4 --zero 3",)
V_DP2 = ("verify 2 4 8 --d-ff 24 --backward --dp 4 --zero 2",)
V_DP1 = ("verify 2 4 8 --d-ff 24 --backward --dp 4 --zero 1",)
V_HY = ("verify 2 4 8 --d-ff 24 --backward --dp 16 --zero hybrid_shard --node-size 4",)
V_PP = ("verify 4 4 8 --backward --layers 6 --pp 4 --microbatches 4",)
V_PPI = ("verify 4 4 8 --backward --layers 8 --pp 2 --microbatches 4 --schedule interleaved",)

CONFIG_READ = "how a config.json is read: its fields and its family's code defaults, no run"
# What a name means is read from the documentation, not observed: verify runs the stage the name is read as.
NAMED_STAGE = "FSDP's strategy names and HYBRID_SHARD's default node of 8 ranks are conventions; verify --dp runs the stage they are read as"
QUANT_READ = "how quantization_config is read into --weight-dtype and --group-size: no run"
DATASHEET = "a datasheet figure of the GPU table"
ROOF = "the roofline's memory-traffic and time model: nothing runs on a GPU"
ATTN = "the attention's parameters: verify runs the FFN only"
REFUSAL = "which inputs are refused: a bound, not a number verify observes"
PARSE = "how option text is parsed: a rule, not a number verify observes"

MUTANTS: tuple[Mutant, ...] = (
    # --- data parallelism: ZeRO stages, FSDP names, bytes sent, node size -----------------------
    Mutant("fr-dp-fsdp-grad-op", MODEL, TO, '"shard_grad_op": 2', '"shard_grad_op": 1',
           "FSDP's SHARD_GRAD_OP mapped to ZeRO-1: its gradients are counted whole on every rank",
           ("verify 2 4 8 --d-ff 24 --backward --dp 4 --zero shard_grad_op",), NAMED_STAGE),
    Mutant("fr-dp-node-default", MODEL, DP, "node_size = 8 if node_size is None else node_size",
           "node_size = 4 if node_size is None else node_size",
           "HYBRID_SHARD's default node taken as 4 ranks instead of 8",
           ("verify 2 4 8 --d-ff 24 --backward --dp 16 --zero hybrid_shard",), NAMED_STAGE),
    Mutant("fr-dp-shard-floor", MODEL, DP, "shards = [(_chunk(psi, r), r) for psi, r in parts]", "shards = [(psi // r, r) for psi, r in parts]",
           "a shard rounded down (no padding of the flat buffer to a multiple of N)", ("verify 2 4 8 --d-ff 24 --backward --dp 3 --zero 3",)),
    Mutant("fr-dp-grad-stage1", MODEL, DP, "grads = shard * b if stage >= 2 else", "grads = shard * b if stage >= 1 else",
           "gradients sharded from ZeRO-1 on (they are from ZeRO-2)", V_DP1),
    Mutant("fr-dp-ring-steps", MODEL, DP, "grad_sent, gather_sent = ring, ring\n",
           "grad_sent, gather_sent = ring + shard * b, ring\n",
           "the reduce-scatter counted as N steps of a ring instead of N − 1", V_DP2),
    Mutant("fr-dp-z3-one-gather", MODEL, DP, "grad_sent, gather_sent = ring, 2 * ring",
           "grad_sent, gather_sent = ring, ring",
           "ZeRO-3's weights all-gathered once per step (the backward's second gather forgotten)", V_DP),
    Mutant("fr-dp-hybrid-allreduce", MODEL, DP, "grad_sent += 2 * (nodes - 1) * _chunk(shard, nodes) * b",
           "grad_sent += (nodes - 1) * _chunk(shard, nodes) * b",
           "HYBRID_SHARD's all-reduce across nodes counted as a reduce-scatter only (factor 2 dropped)", V_HY),
    Mutant("fr-dp-gathered-z2", MODEL, DP, "gathered = t.weight_bytes if stage >= 3 else 0", "gathered = t.weight_bytes if stage >= 2 else 0",
           "gathered whole weights counted at ZeRO-2 too (only ZeRO-3 gathers them)", V_DP2),
    Mutant("fr-dp-stack-transient", MODEL, DP, "return state, state + saved + max(d.gathered_bytes + transient for _, d, transient in groups)",
           "return state, state + saved + sum(d.gathered_bytes + transient for _, d, transient in groups)",
           "a mixed stack's peak adds every group's gathered weights and transient (one layer's at a time are alive)",
           ("verify 2 4 8 --d-ff 24 --experts 4 --top-k 2 --dense-layers 1 --dense-d-ff 16 --backward --dp 4 --zero 3",)),
    # --- pipeline ---------------------------------------------------------------------------
    Mutant("fr-pp-runs-last", MODEL, PP, "return [q + (1 if i < r else 0) for i in range(parts)]",
           "return [q + (1 if i >= parts - r else 0) for i in range(parts)]",
           "the L mod p extra layers put on the last stages instead of the first", ("verify 4 4 8 --backward --layers 7 --pp 4",),
           "which stages take the L mod p extra layers is the plan's choice; verify --pp places the layers as the plan says"),
    Mutant("fr-pp-1f1b-held", MODEL, PP, "return min(p - s, m)", "return min(p, m)",
           "1F1B: every stage holds p microbatches (stage s holds p − s)", V_PP),
    Mutant("fr-pp-interleaved-held", MODEL, PP, "return min(2 * (p - s - 1) + (v - 1) * p + 1, v * m)",
           "return min(2 * (p - s - 1) + (v - 1) * p, v * m)", "interleaved warm-up without Megatron's + 1", V_PPI),
    Mutant("fr-pp-bubble-v", MODEL, PP, "num, den = p - 1, v * m + p - 1", "num, den = p - 1, m + p - 1",
           "the interleaved bubble not reduced by the v chunks", (), "the bubble is a schedule's idle fraction, a formula: no run counts time"),
    Mutant("fr-pp-first-sends-back", MODEL, PP, "sends = (v - (s == p - 1)) + (v - (s == 0))", "sends = (v - (s == p - 1)) + v",
           "the first stage counted as sending gradients backward (it has no stage before it)", V_PP),
    Mutant("fr-pp-p2p-one-way", MODEL, PP, "p2p_bytes_per_microbatch=2 * boundary", "p2p_bytes_per_microbatch=boundary",
           "point-to-point bytes per microbatch: the backward gradient left out", V_PP),
    Mutant("fr-pp-chunks-summed", MODEL, PP, "saved = h * max(per_chunk)", "saved = h * sum(per_chunk)",
           "interleaved: each held chunk-microbatch counted with all the stage's chunks' activations", V_PPI),
    Mutant("fr-pp-state-no-master", MODEL, PP, "state = dp.weight_bytes + dp.gradient_bytes + dp.optimizer_state_bytes + dp.master_weight_bytes",
           "state = dp.weight_bytes + dp.gradient_bytes + dp.optimizer_state_bytes",
           "with --dp, a stage's state leaves out the master weights' shards",
           ("verify 4 4 8 --dtype bfloat16 --backward --layers 4 --pp 2 --dp 2 --zero 1",),
           "verify --pp runs whole layers one rank per stage and refuses --dp: a stage's sharded state is train's arithmetic only"),
    Mutant("fr-pp-micro-batch", MODEL, TR, "micro = replace(cfg, batch=cfg.batch // m)", "micro = replace(cfg, batch=cfg.batch)",
           "each microbatch trained on the whole batch (b, not b/m sequences)", V_PP),
    # --- training options -------------------------------------------------------------------
    Mutant("fr-tr-pure16-default", MODEL, TR, "options = replace(options, mixed_precision=cfg.dtype in SIXTEEN_BIT)",
           "options = replace(options, mixed_precision=False)",
           "a 16-bit dtype trains in pure 16-bit by default (practice, and the docs, say mixed)",
           ("verify 2 4 8 --dtype bfloat16 --backward",),
           "the default is a convention of practice; verify builds its optimizer from train's resolved options"),
    Mutant("fr-tr-master-bytes", MODEL, TO, "MASTER_BYTES = 4", "MASTER_BYTES = 2", "master weights counted in 16 bits instead of float32",
           ("verify 2 4 8 --dtype bfloat16 --backward",)),
    Mutant("fr-tr-state-bytes", MODEL, TO, "STATE_BYTES_MIXED = 4", "STATE_BYTES_MIXED = 2",
           "mixed precision's optimizer states counted in 16 bits instead of float32", ("verify 2 4 8 --dtype bfloat16 --backward",)),
    Mutant("fr-tr-adamw-states", MODEL, TO, '"adamw": Optimizer("AdamW: Adam\'s 2 states, weight decay decoupled", 2)',
           '"adamw": Optimizer("AdamW: Adam\'s 2 states, weight decay decoupled", 1)', "AdamW given one state (it keeps Adam's two)",
           ("verify 2 4 8 --backward --optimizer adamw",)),
    Mutant("fr-tr-8bit-min-size", MODEL, TO, "if tensor_elements < BNB_MIN_8BIT_SIZE:", "if tensor_elements <= BNB_MIN_8BIT_SIZE:",
           "a tensor of exactly 4,096 elements kept in float32 states (bitsandbytes makes it 8-bit)",
           ("verify 2 4 64 --d-ff 64 --no-bias --backward --optimizer adam8bit",)),
    Mutant("fr-tr-8bit-blocks-floor", MODEL, TO, "blocks = -(-tensor_elements // BNB_BLOCK)", "blocks = tensor_elements // BNB_BLOCK",
           "8-bit Adam's absmax blocks rounded down (the last partial block has its absmax too)",
           ("verify 2 4 65 --d-ff 70 --no-bias --backward --optimizer adam8bit",)),
    Mutant("fr-tr-master-always", MODEL, TR, "master_bytes = params * MASTER_BYTES if mixed else 0", "master_bytes = params * MASTER_BYTES",
           "float32 master weights counted without mixed precision too", ("verify 2 4 8 --backward",)),
    Mutant("fr-tr-mask-full", MODEL, TR, "if options.dropout and not mode.forward:", "if options.dropout:",
           "full recompute still saves the dropout mask (it is regenerated with the forward)",
           ("verify 2 4 8 --backward --dropout --recompute full",)),
    Mutant("fr-tr-selective-matmul", MODEL, TR, "recompute_matmul = fwd.totals.matmul_flops if mode.forward else 0",
           "recompute_matmul = fwd.totals.matmul_flops if mode.forward or mode.activations else 0",
           "selective recompute counted as re-running the products too", ("verify 2 4 8 -a gelu --backward --recompute selective",)),
    Mutant("fr-tr-stack-peak-recomputed", MODEL, TR,
           'peak_bytes=persistent + sums["saved_activation_bytes"] + busiest.recomputed_bytes + busiest.backward_transient_bytes',
           'peak_bytes=persistent + sums["saved_activation_bytes"] + busiest.backward_transient_bytes',
           "the stack's training peak leaves out what the recompute regenerates",
           ("verify 2 4 8 -a gelu --backward --recompute selective --layers 3",)),
    # --- attention and the layer ----------------------------------------------------------------
    Mutant("fr-at-gqa-kv", MODEL, AT, 'Projection("k_proj", (d, self.kv_heads * h))', 'Projection("k_proj", (d, n * h))',
           "grouped-query attention's k_proj sized with the query heads (MHA's)", (), ATTN),
    Mutant("fr-cj-head-dim", MODEL, CJ, 'head_dim = self.get("head_dim") or self.get("d_kv") or d_model // heads',
           'head_dim = self.get("d_kv") or d_model // heads', "config.json's head_dim ignored: d_model / heads (Gemma's is not)", (), CONFIG_READ),
    Mutant("fr-cj-multi-query", MODEL, CJ, 'kv_heads = kv_heads or (1 if self.get("multi_query") else heads)', "kv_heads = kv_heads or heads",
           "Falcon's multi_query ignored: one key/value head read as as many as the query heads", (), CONFIG_READ),
    # --- the family table and config.json -----------------------------------------------------
    Mutant("fr-fa-qwen3-all-moe", MODEL, FA, 'moe=Moe("num_experts|num_local_experts", _TOP_K, "moe_intermediate_size", "sparse_step"))',
           'moe=Moe("num_experts|num_local_experts", _TOP_K, "moe_intermediate_size"))',
           "Qwen3-MoE's decoder_sparse_step and mlp_only_layers not read: every layer MoE", (), CONFIG_READ),
    Mutant("fr-cj-sparse-step", MODEL, CJ, "is_moe = [i not in only and (i + 1) % step == 0 for i in range(layers)]",
           "is_moe = [i not in only and i % step == 0 for i in range(layers)]",
           "decoder_sparse_step counted from layer 0 (transformers: (i + 1) % step == 0)", (), CONFIG_READ),
    Mutant("fr-cj-first-k", MODEL, CJ, "is_moe = [i >= first for i in range(layers)]", "is_moe = [i > first for i in range(layers)]",
           "first_k_dense_replace off by one: k + 1 dense layers", (), CONFIG_READ),
    Mutant("fr-cj-moe-layer-step", MODEL, CJ, "listed = list(range(step - 1, layers, step)) if step else []",
           "listed = list(range(step, layers, step)) if step else []",
           "Llama 4's interleave_moe_layer_step: MoE layers from layer step instead of step − 1", (), CONFIG_READ),
    Mutant("fr-fa-dsv3-first-k", MODEL, FA, '"first_k_dense_replace": 3,', '"first_k_dense_replace": 0,',
           "DeepseekV3Config's default first_k_dense_replace read as 0 (it is 3)", (), CONFIG_READ),
    Mutant("fr-cj-t5-gelu", MODEL, CJ, '("gelu_new" if spelling == "gated-gelu" else act)', '("gelu" if spelling == "gated-gelu" else act)',
           "T5's gated-gelu read as exact GELU (T5 v1.1 uses gelu_new, the tanh form)", (), CONFIG_READ),
    Mutant("fr-cj-shared-one", MODEL, CJ, "shared = shared_width // width", "shared = min(1, shared_width // width)",
           "one shared expert however wide shared_expert_intermediate_size is (Qwen2-MoE's is 4 experts wide)", (), CONFIG_READ),
    Mutant("fr-cj-dtype-key", MODEL, CJ, 'DTYPE_KEYS = ("torch_dtype", "dtype")', 'DTYPE_KEYS = ("torch_dtype",)',
           "transformers ≥ 4.56's `dtype` key not read: the default --dtype left at float32", (), CONFIG_READ),
    # --- quantization_config and weight formats ---------------------------------------------------
    Mutant("fr-qu-gptq-group", MODEL, QU, 'group = _group("group_size", _get(q, "group_size", 128, read, notes, "GPTQConfig"))',
           'group = _group("group_size", _get(q, "group_size", 64, read, notes, "GPTQConfig"))',
           "GPTQ's group_size default taken as 64 (GPTQConfig's is 128)", (), QUANT_READ),
    Mutant("fr-qu-group-kept", MODEL, QU, "if group is not None and rule is not None and group != rule.default:",
           "if group is not None and rule is not None and group == rule.default:",
           "a checkpoint's non-default group size dropped (the format's default used)", (), QUANT_READ),
    Mutant("fr-qu-bnb-skip-key", MODEL, QU, '"bitsandbytes": (_bitsandbytes, ("llm_int8_skip_modules", "modules_to_not_convert")),',
           '"bitsandbytes": (_bitsandbytes, ("modules_to_not_convert",)),',
           "bitsandbytes' llm_int8_skip_modules not read: a skipped FFN counted in NF4", (), QUANT_READ),
    Mutant("fr-wf-gptq-groups", MODEL, WF, "groups = ceil(k / (g or k))  # group_size -1 is K: one group",
           "groups = k // (g or k)  # group_size -1 is K: one group", "GPTQ's groups rounded down when G does not divide K",
           ("verify 2 4 64 --d-ff 64 --no-bias --weight-dtype gptq_int4 --group-size 48",)),
    # --- GPUs and the roofline ------------------------------------------------------------------
    Mutant("fr-gp-h100-sparse", MODEL, GP, "_H100_SXM = _peaks(67.0, 67.0, 989.0, 1979.0, 1979.0)",
           "_H100_SXM = _peaks(67.0, 67.0, 1979.0, 3958.0, 3958.0)", "H100 SXM's peaks taken with sparsity (twice the dense)", (), DATASHEET),
    Mutant("fr-rf-tera", MODEL, RF, "return gpu.tflops[dtype] * 1e12", "return gpu.tflops[dtype] * 1e9",
           "TFLOP/s read as GFLOP/s: the peak 1,000× too low", (), ROOF),
    Mutant("fr-rf-gib", MODEL, RF, "bandwidth = gpu.bandwidth_gbs * 1e9", "bandwidth = gpu.bandwidth_gbs * 2**30",
           "datasheet GB/s read as GiB/s", (), ROOF),
    Mutant("fr-rf-no-output", MODEL, RF, "moved = m * (a + nb * n) + matrix.bytes", "moved = m * a + matrix.bytes",
           "a dense GEMM's traffic without its output rows", (), ROOF),
    # --- the API ------------------------------------------------------------------------------
    Mutant("fr-sw-tokens", MODEL, SW, "return lambda r: r.config.tokens", "return lambda r: r.config.seq_len",
           "sweep's tokens column holds seq_len instead of batch × seq_len", (), "a sweep column's content: the API's table, no run"),
    Mutant("fr-kw-max-memory", MODEL, KW, '"max_memory": "max_memory_bytes", ', "",
           "an error about --max-memory names the keyword max_memory (the API's is max_memory_bytes)", (),
           "the API's keyword in an error message"),
    # --- parsers and bounds -----------------------------------------------------------------------
    Mutant("fr-va-nan", MODEL, VA, "if not (value > 0 and value < 1e6):", "if value <= 0 or value >= 1e6:",
           "a number option lets nan through (every comparison with nan is false)", (), PARSE),
    Mutant("fr-va-mib", MODEL, VA, '"MIB": 2**20', '"MIB": 10**6', "MiB read as 10^6 bytes (MB)", (), PARSE),
    Mutant("fr-li-read-one-less", MODEL, LI, "data = f.read(MAX_FILE_BYTES + 1)", "data = f.read(MAX_FILE_BYTES)",
           "a file past the bound read cut to it: refused as broken JSON instead of as too large", (), REFUSAL),
    # --- the verifier ---------------------------------------------------------------------------
    Mutant("fr-vf-8bit-boundary", VERIFIER, "ffn_calc/verifier/optimizer.py", "v.size >= BNB_MIN_8BIT_SIZE}", "v.size > BNB_MIN_8BIT_SIZE}",
           "the simulated Adam8bit keeps float32 states for a tensor of exactly 4,096 elements",
           ("verify 2 4 64 --d-ff 64 --no-bias --backward --optimizer adam8bit",)),
    Mutant("fr-vf-totals-1pct", VERIFIER, "ffn_calc/verifier/training_step.py",
           'checks.append(Check("training", f"{TOTALS_CHECKS[figure]} ({how})", want, value, value == want))',
           'checks.append(Check("training", f"{TOTALS_CHECKS[figure]} ({how})", want, value, abs(value - want) <= want // 100))',
           "the step's totals compared within 1 % instead of exactly", ("verify 2 4 8 --backward", "verify 2 4 8 --dtype bfloat16 --backward")),
    Mutant("fr-vf-stepped", VERIFIER, "ffn_calc/verifier/training_step.py", "every and stepped == moving and bool(grads)",
           "every and stepped <= moving", "the update check passes when fewer elements stepped than had a gradient",
           ("verify 2 4 8 --backward --optimizer adam",)),
    Mutant("fr-vf-fd-tol", VERIFIER, "ffn_calc/verifier/training_step.py", 'f"{err:.1e}", err <= tol, "tolerance")',
           'f"{err:.1e}", err <= 100 * tol, "tolerance")', "finite differences accepted 100× past their tolerance",
           ("verify 2 4 8 --backward",)),
    Mutant("fr-vf-packed-bytes", VERIFIER, "ffn_calc/verifier/packed.py",
           'checks.append(Check("memory", name, want, seen, want == seen))',
           'checks.append(Check("memory", name, want, seen, seen is not None and want[2] == seen[2]))',
           "a packed tensor's dtype and shape no longer compared, only its bytes",
           ("verify 2 4 64 --d-ff 64 --no-bias --weight-dtype gptq_int4",)),
    Mutant("fr-vf-peak-lower", VERIFIER, "ffn_calc/verifier/compare.py", "predicted, held, predicted <= held <= predicted + allowance,",
           "predicted, held, held <= predicted + allowance,", "the forward peak check no longer needs the pass to hold the predicted bytes",
           ("verify 2 4 8",)),
    Mutant("fr-vf-rank-sent", VERIFIER, "ffn_calc/verifier/parallel.py", "c.bytes_sent_per_rank, b, b == c.bytes_sent_per_rank))",
           "c.bytes_sent_per_rank, b, b <= c.bytes_sent_per_rank))", "a rank's ring bytes accepted when fewer than predicted",
           ("verify 2 4 8 --tp 2", "verify 2 4 8 --tp 2 --sequence-parallel --backward")),
    Mutant("fr-vf-uneven-mean", VERIFIER, "ffn_calc/verifier/parallel.py", "ok = 0 <= c.bytes_sent_per_rank - mean < 1",
           "ok = abs(c.bytes_sent_per_rank - mean) < ranks", "uneven chunks: the mean of bytes sent accepted ± N bytes",
           ("verify 1 3 5 --d-ff 20 --tp 2",)),
)  # fmt: skip


def by_id() -> dict[str, Mutant]:
    table = {m.id: m for m in MUTANTS}
    if len(table) != len(MUTANTS):
        raise ValueError("duplicate mutant ids in the fresh catalogue")
    return table
