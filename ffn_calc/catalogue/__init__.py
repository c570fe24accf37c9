"""Catalogue data, each entry with its source: the published models `--model` knows (presets.py)
and the accelerators `--gpu` knows (gpus.py). Standard library only; built on `model`'s records."""
