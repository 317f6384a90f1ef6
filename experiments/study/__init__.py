"""Capacity sizing with Optuna: studies over architecture and optimiser knobs at a fixed D."""
