"""The Kaggle submission path.

The competition notebook runs without internet, so everything it needs travels in one folder
uploaded as a Kaggle dataset: the arcsolver wheel and the wheels of its dependencies (torch
excepted: Kaggle's image has a CUDA build), one checkpoint, the submit recipe, and a manifest of
every file's size and SHA-256. `bundle.py` builds that folder (its wheels are `wheels.py`'s, its
slimmed checkpoints `slim.py`'s, its manifest `manifest.py`'s), `check.py` verifies it, and
`kaggle/arcsolver-submit.ipynb` at the top of the repository installs it and writes the submission.
"""
