"""The roofline measured on this machine (`ffn-calc roofline … --measure`): the device's best
matmul rate and its memory bandwidth, each GEMM of the layer timed at its prefill and decode
shapes beside the bound the roofline predicts from those two figures, and a sweep of M across
the predicted crossover.

A room like the verifier's: NumPy (and, for a CUDA device, PyTorch when it is installed) is
imported here only, and this package is imported only when a measurement is asked for.

- timing.py: one timing routine for every device (warm-up, repeats within a budget, median),
  its clock injected (`Clock`), so that tests drive it with a fake one; standard library only.
- knee.py: where the measured time stops being flat in M, beside the predicted crossover;
  standard library only.
- report.py: the results (the measured device, each GEMM's figures, the knee sweep) and their
  JSON; standard library only.
- devices.py: the CPU through NumPy's BLAS, a CUDA device through PyTorch.
- run.py: what is measured, in what order and within what time and memory.
- saved.py: a measurement saved as JSON, read back as the roofline's hardware (`--gpu-file`);
  standard library only.
"""
