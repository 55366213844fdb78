"""Hypothesis strategies shared by the property tests."""

import numpy as np
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

FAST = settings(max_examples=60, deadline=None)


@st.composite
def grids(draw, max_side=30):
    """A valid ARC grid: uint8, 1..max_side per side, colours 0..9."""
    h = draw(st.integers(1, max_side))
    w = draw(st.integers(1, max_side))
    return draw(hnp.arrays(np.uint8, (h, w), elements=st.integers(0, 9)))
