"""Data: the IDX reader, datasets, ``DataLoader`` and batch transforms.

``load_dataset("digits")`` works offline: it is the 10,000-image MNIST test set shipped inside
the package (MNIST by Y. LeCun, C. Cortes and C. J. C. Burges, redistributed under CC BY-SA 3.0),
split into 8,000 training and 2,000 test images. ``"mnist"`` and ``"fashion-mnist"`` are found
on this machine or downloaded with verification; a folder of images in class subfolders is read
with Pillow.

>>> from cnnlab.data import DataLoader, load_dataset, transforms
>>> train, test = load_dataset("digits")
>>> loader = DataLoader(train, batch_size=64, shuffle=True, seed=0,
...                     transform=transforms.RandomCrop(28, padding=2))
>>> x, y = next(iter(loader))
>>> x.shape, x.dtype, y.dtype
((64, 1, 28, 28), dtype('float32'), dtype('int64'))
"""

from . import transforms
from .datasets import DATASETS, ArrayDataset, load_dataset
from .folder import load_image_folder
from .idx import read_idx
from .images import read_image, read_pixels
from .loader import DataLoader
from .split import Subset, random_split

__all__ = ["DATASETS", "ArrayDataset", "DataLoader", "load_dataset", "load_image_folder",
           "read_idx", "read_image", "read_pixels", "random_split", "Subset", "transforms"]
