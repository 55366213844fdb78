"""A run directory as `arcsolver compare` reads one, without training it."""

import json

from arcsolver.config import PretrainConfig

PER_STEP = 1e9


def fake_run(path, seed, losses, accuracy=0.5, evaluated_every=2, per_step=PER_STEP, **settings):
    """A run directory holding config.json and metrics.jsonl: a training record per step and a
    held-out evaluation every few steps whose loss is losses[k] at the k-th evaluation."""
    config = PretrainConfig().model_dump(mode="json")
    config["run"]["seed"] = seed
    for key, value in settings.items():
        section, name = key.split("__")
        config[section][name] = value
    path.mkdir(parents=True)
    (path / "config.json").write_text(json.dumps(config))
    records = []
    for k, loss in enumerate(losses):
        step = (k + 1) * evaluated_every
        records.append({"step": step, "loss": loss + 0.5, "time_s": step * 0.1, "flops": step * per_step})
        records.append(
            {
                "step": step,
                "heldout_pass@1": accuracy / 2,
                "heldout_pass@2": accuracy / 2,
                "heldout_cell_accuracy": accuracy,
                "heldout_loss": loss,
                "heldout_tasks": 10,
                "time_s": step * 0.1,
                "flops": step * per_step,
            }
        )
    (path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    return path
