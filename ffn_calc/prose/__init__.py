"""Prose and pictures built from the model's numbers: `explain`'s formulas with the numbers
substituted (explanation.py), its data-flow diagram (diagram.py), the interview questions answered
with the layer's numbers (interview.py), and `explain --compare` (comparison.py). Standard library
only; every number shown is the model's own figure, and the renderers print it."""
