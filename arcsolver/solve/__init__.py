"""Solving new tasks: test-time adaptation (adapt), the time budget (budget), the solve itself,
task by task (solver), the submission written as tasks finish (writer) in the Kaggle format with
its fallbacks (submission), worker processes over task shards (shards) and their entry point
(worker), and scoring a submission file (evaluate)."""
