"""Data: readers of the published records, periodic graphs, the on-disk store and the DataModule."""
