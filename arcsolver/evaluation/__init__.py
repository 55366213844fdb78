"""ARC evaluation, shared by pretraining's held-out evaluation and by solving: which canvas a
query runs on, augmented inference and likelihood ranking, voting over the augmented versions,
and scoring (pass@k and per-cell accuracy, aggregated one way for every caller)."""
