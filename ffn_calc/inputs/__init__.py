"""From what a user says to a layer: config.json files, flags and JSON lines resolved (over a
catalogue preset) into an FFNConfig, and a GPU from its name or figures. Standard library only."""
