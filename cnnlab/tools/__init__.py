"""Tools that show and explain what a CNN computes.

>>> from cnnlab import models
>>> from cnnlab.tools import summary
>>> summary(models.lenet5(), (1, 28, 28)).total_params
61706
"""

from .summary import Summary, SummaryRow, summary

__all__ = ["Summary", "SummaryRow", "summary"]
