#!/usr/bin/env bash
# Pretrain on N GPUs (or N CPU processes) with torchrun, one process per device:
#   pretrain/launch.sh N [arcsolver pretrain options...]
#   pretrain/launch.sh 4 --recipe arc1 --out runs/arc1
#   pretrain/launch.sh 4 --recipe arc1 --out runs/arc1 --resume
# NCCL on GPUs, gloo on CPU. The global batch (optim.global_batch_size) is split over processes.
set -euo pipefail
nproc="${1:?usage: pretrain/launch.sh N_PROCESSES [arcsolver pretrain options...]}"
shift
exec torchrun --standalone --nproc_per_node="$nproc" -m arcsolver pretrain "$@"
