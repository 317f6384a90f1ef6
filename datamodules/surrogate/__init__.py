"""The built-in dataset: a tight-binding surrogate of the interband dielectric function of metals (not DFT)."""
