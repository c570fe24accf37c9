"""The model: exact shapes, parameters, FLOPs and memory, as Python integers.

Standard library only; nothing here prints or imports typer, rich or numpy. The floors, from
the bottom: conventions and registries (activations, dtypes, structure), the layer (inputs of
one FFN), the forward stages, then training, parallelism, roofline and explain on top of them.
"""
