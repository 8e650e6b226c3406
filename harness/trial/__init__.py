"""One trial of each kind (training, k-fold, objective), the Ray Tune adapter, and the LR
range test. Runs on Ray workers: nothing here writes to MLflow."""
