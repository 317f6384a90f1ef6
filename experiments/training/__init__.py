"""Training one grid point: the recipe, the Lightning run, its callbacks, and prediction from a checkpoint."""
