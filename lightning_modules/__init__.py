"""Models and losses: the OptiMetal GNNs wrapped as LightningModules."""
