"""Studies: the command line, sweeps, scaling-law fits, Optuna studies, benchmarks and reports."""
