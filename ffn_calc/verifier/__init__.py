"""The verifier: the layer run in NumPy, what the run observed, and its comparison with the
model's prediction. Only `report` (plain data) may be imported without NumPy."""
