"""The deep-supervision driver that pretraining and adaptation share (arcsolver/engine/trainer.py):
what its caller decides (learning-rate scale, when the network trains, when to stop) and what it
keeps (a carry per canvas side)."""

import torch
from helpers import tiny_config

from arcsolver.data.stream import build_puzzles, stream_for, trainable_pairs
from arcsolver.engine.distributed import Dist
from arcsolver.engine.trainer import Trainer
from arcsolver.model.trm import TRM
from arcsolver.train.tasks import select_tasks


def make(*extra) -> Trainer:
    cfg = tiny_config("optim.global_batch_size=4", "model.canvas=10", "data.max_side=8", "optim.ema_rate=0.5", *extra)
    train, heldout = select_tasks(cfg)
    puzzles = build_puzzles(train + heldout, cfg.data.n_augmentations, cfg.run.seed)
    torch.manual_seed(0)
    model = TRM(cfg.model, len(puzzles) + 1).train()
    pairs = trainable_pairs(train, heldout)
    stream = stream_for(puzzles, pairs, cfg.canvas_sides() or cfg.model.canvas, 0, True, sampling="uniform")
    return Trainer(model, stream, cfg.optim, Dist(), torch.float32)


def test_the_caller_sets_the_scale_and_the_stop_and_hears_of_every_step():
    trainer = make()
    heard = []
    reached = trainer.run(
        2,
        10,
        lambda step: step / 10,
        should_stop=lambda step: step == 5,
        after_step=lambda step, result: heard.append((step, result.lr_scale, result.side)),
    )
    assert reached == 5
    assert [(step, scale) for step, scale, _ in heard] == [(3, 0.2), (4, 0.3), (5, 0.4)]
    # One carry per canvas side drawn, each as wide as the batch.
    assert set(trainer.carries) == {side for _, _, side in heard}
    assert all(carry.y.shape[0] == 4 for carry in trainer.carries.values())


def test_a_frozen_network_keeps_its_weights_while_the_puzzle_rows_train():
    trainer = make()
    model = trainer.model
    network = {k: v.clone() for k, v in model.state_dict().items() if not k.startswith("puzzle_emb")}
    rows = model.puzzle_emb.weight.clone()
    trainer.run(0, 3, lambda step: 1.0, network_trains=lambda step: False)
    after = model.state_dict()
    assert all(torch.equal(v, after[k]) for k, v in network.items())
    assert not torch.equal(rows, model.puzzle_emb.weight)
    assert all(p.requires_grad for p in model.parameters())  # trainable again once the run is over

    trainer.run(3, 5, lambda step: 1.0)
    assert any(not torch.equal(v, model.state_dict()[k]) for k, v in network.items())
    assert any(not torch.equal(trainer.ema.shadow[k], p) for k, p in model.named_parameters())
