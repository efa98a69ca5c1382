"""Reverse-mode automatic differentiation over NumPy arrays."""

from .grad_mode import enable_grad, is_grad_enabled, no_grad
from .gradcheck import GradcheckResult, gradcheck
from .tensor import Tensor, as_tensor, needs_grad, record, tensor

__all__ = ["GradcheckResult", "Tensor", "as_tensor", "enable_grad", "gradcheck",
           "is_grad_enabled", "needs_grad", "no_grad", "record", "tensor"]
