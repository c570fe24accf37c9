"""The model: exact shapes, parameters, FLOPs and memory, as Python integers.

Standard library only; nothing here prints or imports typer, rich or numpy, and nothing here is
prose. The floors, from the bottom: the cost convention and the registries (activations, norms,
dtypes, structure), the layer (inputs of one FFN), the forward stages, then training, parallelism
and the roofline arithmetic on top of them. Catalogue data (presets, GPU datasheets) lives in
`ffn_calc.catalogue`; prose and pictures built from these numbers in `ffn_calc.prose`.
"""
