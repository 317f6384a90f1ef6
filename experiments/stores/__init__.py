"""Where results live: the MLflow tracking store (and its Lightning logger) and the Optuna RDB storage."""
