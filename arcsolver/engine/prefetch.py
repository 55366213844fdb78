"""The next training batch, prepared while the device works on this one.

Drawing a batch (augmenting its grids and encoding them onto canvases) is numpy and Python work
on the host. Done between steps it leaves the device idle; done on a background thread while a
step runs, it is off the critical path. Batch k is a pure function of (seed, k), so preparing it
early changes nothing in what is trained. On CUDA the arrays are pinned, so that the copy to the
device runs without blocking the host.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor, wait

import numpy as np
import torch

from arcsolver.data.stream import SizedStream, TrainStream


def _as_tensors(arrays: dict[str, np.ndarray], pin: bool) -> dict[str, torch.Tensor]:
    out = {}
    for key, value in arrays.items():
        tensor = torch.from_numpy(value).long()
        out[key] = tensor.pin_memory() if pin else tensor
    return out


class Prefetcher:
    """Batches of a stream, one step ahead, on one background thread.

    `get(step)` returns (canvas side, the batch's tensors on `device`) and starts preparing
    step + 1. Only the background thread draws from the stream while a batch is pending, so the
    stream's caches are never touched by two threads at once.
    """

    def __init__(
        self,
        stream: TrainStream | SizedStream,
        batch_size: int,
        device: torch.device,
        rank: int = 0,
        world_size: int = 1,
    ):
        self.stream, self.batch_size, self.device = stream, batch_size, device
        self.rank, self.world_size = rank, world_size
        self.pin = device.type == "cuda"
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="prefetch")
        self._pending: tuple[int, Future] | None = None

    def _prepare(self, step: int) -> tuple[int, dict[str, torch.Tensor]]:
        side = self.stream.side_of(step)
        b = self.stream.batch(step, self.batch_size, self.rank, self.world_size)
        arrays = {"inputs": b.inputs, "labels": b.labels, "puzzle_ids": b.puzzle_ids}
        return side, _as_tensors(arrays, self.pin)

    def get(self, step: int) -> tuple[int, dict[str, torch.Tensor]]:
        """Batch `step` on the device (prepared ahead if it was the one expected)."""
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == step:
            prepared = pending[1].result()
        else:
            if pending is not None:  # another step was expected: let it finish, unused
                wait([pending[1]])
            prepared = self._prepare(step)
        self._pending = (step + 1, self._pool.submit(self._prepare, step + 1))
        side, tensors = prepared
        return side, {k: v.to(self.device, non_blocking=self.pin) for k, v in tensors.items()}

    def close(self) -> None:
        """Drop the batch being prepared and stop the thread."""
        if self._pending is not None:
            self._pending[1].cancel()
            self._pending = None
        self._pool.shutdown(wait=True)

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
