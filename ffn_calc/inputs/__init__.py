"""From what a user says to a layer: presets (data), config.json files, flags and JSON lines
resolved into an FFNConfig, and sweeps of many. Standard library only; built on `model`."""
