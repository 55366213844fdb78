"""The training machinery that pretraining and test-time adaptation share: the deep-supervision
driver, device and precision, the optimisation step (with gradient accumulation and out-of-memory
recovery), the memory model that sizes its micro-batches, optimiser and EMA, checkpoints and the
model a checkpoint gives for solving, and torchrun data parallelism."""
