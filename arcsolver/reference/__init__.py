"""The TRM reference code's checkpoints, weights and row names, read into arcsolver's."""
