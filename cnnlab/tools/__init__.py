"""Tools that show and explain what a CNN computes.

- :func:`summary` — the lecture's layer table (shapes, parameters, MACs, padding, receptive
  fields); :func:`receptive_field` — size, jump and start of every layer's field;
- :mod:`~cnnlab.tools.explain` — worked arithmetic of convolution, pooling, ReLU, softmax and
  padding; :mod:`~cnnlab.tools.filters` — classic image filters with named kernels;
- :mod:`~cnnlab.tools.bench` and :mod:`~cnnlab.tools.twin` — timings against PyTorch.

>>> from cnnlab import models
>>> from cnnlab.tools import summary
>>> summary(models.lenet5(), (1, 28, 28)).total_params
61706
"""

from . import explain, filters
from .receptive_field import Field, FieldRow, receptive_field
from .summary import Summary, SummaryRow, summary

__all__ = ["Field", "FieldRow", "Summary", "SummaryRow", "explain", "filters",
           "receptive_field", "summary"]
