"""Classification metrics on class indices: accuracy, confusion matrix, per-class accuracy.

All of them work on integer label arrays (``labels`` the true classes, ``predicted`` the
model's ``argmax``); the confusion matrix is one ``np.bincount`` over ``labels * K + predicted``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .._validate import _is_int


def _class_indices(values, name: str) -> np.ndarray:
    array = np.asarray(values)
    if array.ndim != 1:
        raise ValueError(f"{name} must be a 1-D array of class indices, received shape "
                         f"{array.shape}.")
    if array.size and (array.dtype == np.bool_ or not np.issubdtype(array.dtype, np.integer)):
        raise TypeError(f"{name} must hold integer class indices, received dtype {array.dtype}.")
    return array.astype(np.int64, copy=False)


def _pair(labels, predicted) -> tuple[np.ndarray, np.ndarray]:
    labels = _class_indices(labels, "labels")
    predicted = _class_indices(predicted, "predicted")
    if labels.shape != predicted.shape:
        raise ValueError(
            f"labels and predicted must have the same length, received {labels.size} labels "
            f"and {predicted.size} predictions."
        )
    return labels, predicted


def accuracy(labels, predicted) -> float:
    """The fraction of predictions equal to the labels (NaN for no samples).

    Args:
        labels: true class indices ``(N,)``.
        predicted: predicted class indices ``(N,)``.

    Example:
        >>> accuracy([0, 1, 2, 2], [0, 1, 1, 2])
        0.75
    """
    labels, predicted = _pair(labels, predicted)
    if labels.size == 0:
        return float("nan")
    return float(np.count_nonzero(labels == predicted) / labels.size)


def confusion_matrix(labels, predicted, num_classes: int) -> np.ndarray:
    """Counts ``M[i, j]`` of samples of true class ``i`` predicted as class ``j``.

    Rows are the true classes, columns the predictions (scikit-learn's convention), so each
    row sums to the number of samples of that class and the diagonal holds the correct ones.

    Args:
        labels: true class indices ``(N,)`` in ``[0, num_classes)``.
        predicted: predicted class indices ``(N,)`` in ``[0, num_classes)``.
        num_classes: ``K``, the number of classes.

    Shape:
        ``(N,), (N,) -> (K, K)``, int64.

    Example:
        >>> confusion_matrix([0, 1, 1, 2], [0, 1, 2, 2], num_classes=3)
        array([[1, 0, 0],
               [0, 1, 1],
               [0, 0, 1]])
    """
    if not _is_int(num_classes) or num_classes <= 0:
        raise ValueError(f"num_classes must be a positive int, received {num_classes!r}.")
    labels, predicted = _pair(labels, predicted)
    for name, values in (("labels", labels), ("predicted", predicted)):
        if values.size and (values.min() < 0 or values.max() >= num_classes):
            bad = values[(values < 0) | (values >= num_classes)][0]
            raise ValueError(
                f"{name} must be class indices in [0, {num_classes}), received {bad}."
            )
    counts = np.bincount(labels * num_classes + predicted, minlength=num_classes ** 2)
    return counts.reshape(num_classes, num_classes)                 # (K, K)


def per_class_accuracy(matrix: np.ndarray) -> np.ndarray:
    """The accuracy on each true class (its recall): ``M[i, i] / Σ_j M[i, j]``.

    A class with no sample gets NaN.

    Shape:
        ``(K, K) -> (K,)``, float64.

    Example:
        >>> per_class_accuracy(np.array([[2, 0], [1, 3]]))
        array([1.  , 0.75])
    """
    matrix = np.asarray(matrix)
    if matrix.ndim != 2 or matrix.shape[0] != matrix.shape[1]:
        raise ValueError(f"a confusion matrix must be square (K, K), received shape "
                         f"{matrix.shape}.")
    totals = matrix.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(totals > 0, np.diag(matrix) / np.maximum(totals, 1), np.nan)


def format_confusion_matrix(matrix: np.ndarray, classes: Sequence[str] | None = None) -> str:
    """The matrix as an aligned text table: one row per true class, one column per prediction.

    Example:
        >>> print(format_confusion_matrix(np.array([[5, 1], [0, 7]]), ["cat", "dog"]))
        true \\ predicted  cat  dog
        cat                 5    1
        dog                 0    7
    """
    matrix = np.asarray(matrix)
    k = matrix.shape[0]
    names = [str(c) for c in classes] if classes is not None else [str(i) for i in range(k)]
    if len(names) != k:
        raise ValueError(f"classes must name the {k} classes of the matrix, received "
                         f"{len(names)} names.")
    corner = "true \\ predicted"
    first = max(len(corner), *(len(n) for n in names))
    width = max(max(len(n) for n in names), len(str(int(matrix.max(initial=0)))))
    lines = [corner.ljust(first) + "".join(f"  {n:>{width}}" for n in names)]
    for name, row in zip(names, matrix):
        lines.append(name.ljust(first) + "".join(f"  {int(v):>{width}}" for v in row))
    return "\n".join(lines)
