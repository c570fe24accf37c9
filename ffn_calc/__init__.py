"""ffn-calc: exact shapes, parameters, FLOPs and memory of a Transformer feed-forward layer."""

__version__ = "0.1.0"
