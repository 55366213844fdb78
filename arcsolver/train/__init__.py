"""Training: the TRM data protocol, the deep-supervision loop, checkpoints, distribution."""
