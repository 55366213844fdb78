"""The TRM reference code's checkpoints as arcsolver runs (`arcsolver import-reference`), one idea a file:

    weights.py      its state dict in our names, checked
    settings.py     its all_config.yaml, the weights' shapes and its ARC recipe as our settings
    names.py        its data sets' row names (identifiers.json) read, in our names, and rebuilt
    checkpoint.py   a checkpoint read and checked whole (tensors only: no stored code runs)
    convert.py      a checkpoint so read, written as a run directory, atomically

A checkpoint on the Hub is downloaded by arcsolver.hub. Training and solving never import this
package (tests/test_import_layers.py).
"""
