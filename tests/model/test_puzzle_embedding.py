import pytest
import torch

from arcsolver.model.puzzle_embedding import PuzzleEmbedding


def _table(n_rows=6, dim=4):
    emb = PuzzleEmbedding(n_rows, dim)
    emb.weight.copy_(torch.arange(n_rows * dim, dtype=torch.float32).view(n_rows, dim) / 10)
    emb.weight[0] = 0
    return emb


def test_table_starts_blank_and_is_not_a_parameter():
    emb = PuzzleEmbedding(5, 8)
    assert torch.equal(emb.weight, torch.zeros(5, 8))
    assert list(emb.parameters()) == []
    assert "weight" in emb.state_dict()


def test_forward_gives_a_grad_collecting_leaf_only_in_training():
    emb = _table()
    ids = torch.tensor([1, 3])
    rows = emb(ids)
    assert rows.is_leaf and rows.requires_grad
    assert torch.equal(rows, emb.weight[ids])
    emb.eval()
    assert not emb(ids).requires_grad
    emb.train()
    with torch.no_grad():
        assert not emb(ids).requires_grad


def test_sign_sgd_updates_only_the_batch_rows_with_summed_gradients():
    emb = _table()
    before = emb.weight.clone()
    ids = torch.tensor([2, 4, 2, 0])
    rows = emb(ids)
    # id 2 appears twice: +1 and -3 sum to -2, so its sign is -1 in every coordinate
    grad = torch.tensor([[1.0] * 4, [0.5, -0.5, 0.0, 2.0], [-3.0] * 4, [9.0] * 4])
    (rows * grad).sum().backward()
    lr, wd = 0.1, 0.5
    emb.step(lr, wd)

    decay = 1 - lr * wd
    expected = before.clone()
    expected[2] = before[2] * decay + lr
    expected[4] = before[4] * decay - lr * torch.tensor([1.0, -1.0, 0.0, 1.0])
    assert torch.allclose(emb.weight, expected)
    untouched = torch.tensor([0, 1, 3, 5])  # the blank row stays blank even when in the batch
    assert torch.equal(emb.weight[untouched], before[untouched])


def test_distributed_path_matches_single_process_step():
    ids = torch.tensor([1, 2, 1])
    grad = torch.randn(3, 4)
    one, two = _table(), _table()
    (one(ids) * grad).sum().backward()
    one.step(0.01, 0.1)
    (two(ids) * grad).sum().backward()
    gathered_ids, gathered_grads = two.batch_gradients()  # what each process would all-gather
    assert gathered_ids.shape == (3,) and gathered_grads.shape == (3, 4)
    two.apply_sign_sgd(gathered_ids, gathered_grads, lr=0.01, weight_decay=0.1)
    assert torch.equal(one.weight, two.weight)


def test_step_without_a_forward_is_an_error():
    with pytest.raises(RuntimeError, match="no training forward"):
        PuzzleEmbedding(3, 2).step(0.01, 0.1)


def test_grow_appends_rows_at_the_mean_of_trained_rows():
    emb = _table(n_rows=4, dim=3)
    trained_mean = emb.weight[1:].mean(0)
    before = emb.weight.clone()
    new_ids = emb.grow(2)
    assert list(new_ids) == [4, 5]
    assert emb.n_rows == 6
    assert torch.equal(emb.weight[:4], before)
    assert torch.allclose(emb.weight[4:], trained_mean.expand(2, 3))
    only_blank = PuzzleEmbedding(1, 3)
    only_blank.grow(1)  # nothing trained yet: new rows start blank
    assert torch.equal(only_blank.weight, torch.zeros(2, 3))


def test_grown_rows_train_independently():
    emb = _table(n_rows=3, dim=2)
    new = emb.grow(2)
    rows = emb(torch.tensor([new[0]]))
    rows.sum().backward()
    emb.step(0.1, 0.0)
    assert not torch.equal(emb.weight[new[0]], emb.weight[new[1]])


def test_state_dict_round_trip_resizes_to_the_checkpoint():
    emb = _table(n_rows=4, dim=3)
    emb.grow(3)
    state = emb.state_dict()
    fresh = PuzzleEmbedding(2, 3)
    fresh.load_state_dict(state)
    assert fresh.n_rows == 7
    assert torch.equal(fresh.weight, emb.weight)
    with pytest.raises(RuntimeError):
        PuzzleEmbedding(2, 5).load_state_dict(state)  # a different width is a real mismatch


def test_resize_keeps_existing_rows():
    emb = _table(n_rows=4, dim=2)
    before = emb.weight.clone()
    emb.resize(6)
    assert torch.equal(emb.weight[:4], before) and torch.equal(emb.weight[4:], torch.zeros(2, 2))
    emb.resize(3)
    assert torch.equal(emb.weight, before[:3])
