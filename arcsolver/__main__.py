"""`python -m arcsolver` (what torchrun launches: `torchrun --nproc_per_node N -m arcsolver pretrain`)."""

from arcsolver.cli import main

main()
