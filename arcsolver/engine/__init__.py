"""What pretraining and test-time adaptation share: device and precision, the optimisation step
(with gradient accumulation and out-of-memory recovery), and the memory model that sizes its
micro-batches."""
