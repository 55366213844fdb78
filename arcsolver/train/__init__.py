"""Pretraining: the tasks a run trains on, the deep-supervision loop, its checkpoints and --resume,
stopping on a signal, progress, held-out evaluation, and --plan."""
