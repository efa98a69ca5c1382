"""Layers, containers, losses and initialisers with ``torch.nn``'s names and state_dict keys."""

from . import init
from .container import Sequential
from .conv import Conv1d, Conv2d, Conv3d, ConvTranspose1d, ConvTranspose2d, ConvTranspose3d
from .module import Module
from .parameter import Parameter

__all__ = [
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "Module", "Parameter", "Sequential", "init",
]
