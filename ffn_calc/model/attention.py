"""The attention around the FFN: its projections' parameters only, as context for "what share of
the layer is the FFN" (no attention calculator: no FLOPs, no KV cache). Standard library only.

Multi-head and grouped-query attention (n_h query heads, n_kv key/value heads of head_dim h; MQA
is n_kv = 1, MHA n_kv = n_h), without biases:
    q (d, n_h·h) + k (d, n_kv·h) + v (d, n_kv·h) + o (n_h·h, d) = 2·d·n_h·h + 2·d·n_kv·h.
DeepSeek's multi-head latent attention (modeling_deepseek_v3.py, DeepseekV3Attention):
    q_a_proj (d, q_lora) + q_a_layernorm (q_lora) + q_b_proj (q_lora, n_h·(nope + rope))
    [or q_proj (d, n_h·(nope + rope)) when q_lora_rank is null, as in V2-Lite]
    + kv_a_proj_with_mqa (d, kv_lora + rope) + kv_a_layernorm (kv_lora)
    + kv_b_proj (kv_lora, n_h·(nope + v)) + o_proj (n_h·v, d).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import prod

from ffn_calc.errors import ConfigError


@dataclass(frozen=True)
class Projection:
    """One weight of the attention: `shape` in elements (a norm's is one-dimensional)."""

    name: str
    shape: tuple[int, ...]

    @property
    def params(self) -> int:
        return prod(self.shape)


@dataclass(frozen=True)
class Attention:
    """The attention's shape as the model's config.json gives it: `heads` query heads,
    `kv_heads` key/value heads of `head_dim`; with `kv_lora_rank` > 0, DeepSeek's MLA
    (`q_lora_rank` 0: no query compression; qk_nope/qk_rope/v head dims)."""

    heads: int
    kv_heads: int
    head_dim: int
    q_lora_rank: int = 0
    kv_lora_rank: int = 0
    qk_nope_head_dim: int = 0
    qk_rope_head_dim: int = 0
    v_head_dim: int = 0

    def __post_init__(self) -> None:
        for name in ("heads", "kv_heads", "head_dim"):
            if not isinstance(getattr(self, name), int) or getattr(self, name) < 1:
                raise ConfigError("attention", f"{name} must be a whole number ≥ 1, got {getattr(self, name)!r}")
        if self.heads % self.kv_heads:
            raise ConfigError("attention", f"{self.heads} query heads do not divide into {self.kv_heads} key/value groups")

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def kind(self) -> str:
        if self.is_mla:
            return "multi-head latent attention (MLA)"
        if self.kv_heads == self.heads:
            return "multi-head attention"
        return "multi-query attention" if self.kv_heads == 1 else "grouped-query attention"

    def projections(self, d_model: int) -> tuple[Projection, ...]:
        d, n = d_model, self.heads
        if not self.is_mla:
            h = self.head_dim
            return (Projection("q_proj", (d, n * h)), Projection("k_proj", (d, self.kv_heads * h)),
                    Projection("v_proj", (d, self.kv_heads * h)), Projection("o_proj", (n * h, d)))  # fmt: skip
        qk = self.qk_nope_head_dim + self.qk_rope_head_dim
        q = (
            (Projection("q_a_proj", (d, self.q_lora_rank)), Projection("q_a_layernorm", (self.q_lora_rank,)),
             Projection("q_b_proj", (self.q_lora_rank, n * qk)))
            if self.q_lora_rank else (Projection("q_proj", (d, n * qk)),)
        )  # fmt: skip
        return (*q, Projection("kv_a_proj_with_mqa", (d, self.kv_lora_rank + self.qk_rope_head_dim)),
                Projection("kv_a_layernorm", (self.kv_lora_rank,)),
                Projection("kv_b_proj", (self.kv_lora_rank, n * (self.qk_nope_head_dim + self.v_head_dim))),
                Projection("o_proj", (n * self.v_head_dim, d)))  # fmt: skip

    def params(self, d_model: int) -> int:
        """The attention's parameters (biases left out), the sum of its projections."""
        return sum(p.params for p in self.projections(d_model))


def mha(heads: int, head_dim: int) -> Attention:
    """Multi-head attention: as many key/value heads as query heads."""
    return Attention(heads, heads, head_dim)


def mla(heads: int, q_lora_rank: int, kv_lora_rank: int, qk_nope: int, qk_rope: int, v_head: int) -> Attention:
    """DeepSeek's MLA, in config.json's order of names."""
    return Attention(heads, heads, qk_nope + qk_rope, q_lora_rank, kv_lora_rank, qk_nope, qk_rope, v_head)


def attention_of(spec: Attention | tuple[int, ...] | None) -> Attention | None:
    """A preset's attention (catalogue/presets.py, data only): (heads, kv_heads, head_dim), or MLA's
    (heads, q_lora_rank, kv_lora_rank, qk_nope_head_dim, qk_rope_head_dim, v_head_dim)."""
    if spec is None or isinstance(spec, Attention):
        return spec
    if len(spec) == 3:
        return Attention(*spec)
    if len(spec) == 6:
        return mla(*spec)
    raise ConfigError("attention", f"a preset's attention is 3 numbers (heads, kv heads, head_dim) or MLA's 6, got {spec!r}")
