"""Solving new tasks: test-time adaptation (adapt), the time budget (budget), the solve itself
(solver), each checkpoint's turn in it, task by task (answer), a task's answers ranked and voted
(ranking), what it shows as it goes (progress), the submission written as tasks finish (writer)
in the Kaggle format with its fallbacks (submission), worker processes over task shards (shards)
and their entry point (worker), and scoring a submission file (evaluate)."""
