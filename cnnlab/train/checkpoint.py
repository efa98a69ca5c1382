"""Checkpoints: one ``.npz`` of arrays and one ``.json`` of metadata beside it, written atomically.

A checkpoint saved as ``run/model.npz`` is the pair

- ``run/model.npz``: the model's ``state_dict`` under ``model/<key>`` (``model/0.weight``...),
  the optimiser's per-parameter arrays under ``optimizer/state/<index>/<name>`` (momentum
  buffers, Adam's moments and ``step``), cnnlab's random-generator state under ``rng/state``
  (dropout masks continue exactly) and the format marker ``format/version``;
- ``run/model.json``: readable metadata: model name and arguments, training configuration,
  completed epochs, metrics, the optimiser's class and ``param_groups`` (learning rates,
  momentum...), the lr-scheduler's class and state, the format version, and the SHA-256 of the
  ``.npz``.

Each file is written to a temporary file in the same directory and moved into place with
``os.replace``, the ``.npz`` first, so a reader sees either the old file or the new one, never a
half-written one. The JSON records the SHA-256 of the ``.npz`` it belongs to: if a save stopped
between the two moves, or one file was replaced by hand, loading refuses the mismatched pair
with a clear error instead of mixing two checkpoints. Arrays are read with
``np.load(..., allow_pickle=False)``, so a checkpoint file cannot run code.

Resuming exactly: ``restore`` rebuilds the model from its name and arguments and loads the
weights; ``restore_training`` then loads the optimiser, the scheduler and the random state and
returns the epoch to pass to ``fit(start_epoch=...)``.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import numbers
import os
import secrets
import time
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .. import random as cnnlab_random
from .._validate import _is_int
from ..nn.module import Module
from ..optim.lr_scheduler import LRScheduler
from ..optim.optimizer import Optimizer

FORMAT = "cnnlab-checkpoint"
FORMAT_VERSION = 1

PathLike = str | os.PathLike


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` read: the arrays and the metadata of one checkpoint.

    Attributes:
        path: the ``.npz`` file.
        model_name: the name the model was saved under (for a factory such as
            ``cnnlab.models.get``).
        model_args: keyword arguments that rebuild the model with that factory.
        model_state: the model's ``state_dict`` (name -> array).
        epoch: epochs completed when it was saved; pass it to ``fit(start_epoch=...)``.
        metrics: the metrics saved with it (e.g. the epoch's ``val_accuracy``).
        config: the training configuration saved with it.
        optimizer_class: class name of the saved optimiser, or None.
        optimizer_state: the optimiser's ``state_dict()``, or None.
        scheduler_class: class name of the saved lr-scheduler, or None.
        scheduler_state: the scheduler's ``state_dict()``, or None.
        rng_state: the state of cnnlab's random generator, or None.
        extra: more metadata (``fit``'s settings, whether training was interrupted...).
        metadata: the whole JSON document.
    """

    path: Path
    model_name: str
    model_args: dict[str, Any]
    model_state: dict[str, np.ndarray] = field(repr=False)
    epoch: int
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    optimizer_class: str | None = None
    optimizer_state: dict[str, Any] | None = field(default=None, repr=False)
    scheduler_class: str | None = None
    scheduler_state: dict[str, Any] | None = None
    rng_state: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)


# ---------------------------------------------------------------------------- paths and files
def checkpoint_paths(path: PathLike) -> tuple[Path, Path]:
    """The ``(.npz, .json)`` pair of a checkpoint given either file or the name without suffix.

    Example:
        >>> [p.name for p in checkpoint_paths("runs/model")]
        ['model.npz', 'model.json']
    """
    path = Path(path)
    if path.suffix in (".npz", ".json"):
        stem = path.with_suffix("")
    else:
        stem = path
    return stem.with_name(stem.name + ".npz"), stem.with_name(stem.name + ".json")


def _atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then ``os.replace`` it into place."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    with contextlib.suppress(OSError, AttributeError):      # make the rename durable (POSIX)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


def _json_data(value: Any, where: str) -> Any:
    """``value`` as JSON data: NumPy scalars and arrays become numbers and lists, NaN/inf None."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        value = float(value)
        return value if math.isfinite(value) else None
    if isinstance(value, np.ndarray):
        return _json_data(value.tolist(), where)
    if isinstance(value, Mapping):
        return {str(k): _json_data(v, where) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_data(v, where) for v in value]
    raise TypeError(
        f"{where} must hold JSON data (numbers, strings, lists, dicts), received a "
        f"{type(value).__name__}."
    )


# ---------------------------------------------------------------------------- saving
def save_checkpoint(path: PathLike, model: Module, optimizer: Optimizer | None = None, *,
                    model_name: str, model_args: Mapping[str, Any] | None = None,
                    config: Mapping[str, Any] | None = None, epoch: int,
                    metrics: Mapping[str, Any] | None = None,
                    scheduler: LRScheduler | None = None,
                    extra: Mapping[str, Any] | None = None) -> Path:
    """Save model, optimiser, scheduler and random state as ``NAME.npz`` + ``NAME.json``.

    Args:
        path: ``NAME.npz`` (or ``NAME``, or ``NAME.json``); the directory must exist.
        model: the model whose ``state_dict`` is saved.
        optimizer: the optimiser to resume (its arrays and ``param_groups``), or None.
        model_name: the name that rebuilds the model with a factory (``"lenet5"``).
        model_args: keyword arguments of that factory (JSON data).
        config: the training configuration to keep with the weights (JSON data).
        epoch: epochs completed (the ``start_epoch`` of a resumed run).
        metrics: metrics to record (NumPy numbers are converted, NaN becomes null).
        scheduler: the learning-rate scheduler to resume, or None.
        extra: any further JSON metadata (``fit`` stores its settings here).

    Returns:
        The path of the ``.npz`` file.

    Example:
        >>> import tempfile, pathlib
        >>> from cnnlab import nn
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> model = nn.Sequential(nn.Linear(4, 2))
        >>> save_checkpoint(folder / "model.npz", model, model_name="linear", epoch=0).name
        'model.npz'
        >>> sorted(p.name for p in folder.iterdir())
        ['model.json', 'model.npz']
    """
    if not isinstance(model, Module):
        raise TypeError(f"save_checkpoint: model must be a cnnlab.nn.Module, received "
                        f"{type(model).__name__}.")
    if optimizer is not None and not isinstance(optimizer, Optimizer):
        raise TypeError(f"save_checkpoint: optimizer must be a cnnlab.optim.Optimizer or None, "
                        f"received {type(optimizer).__name__}.")
    if scheduler is not None and not isinstance(scheduler, LRScheduler):
        raise TypeError(f"save_checkpoint: scheduler must be a cnnlab lr_scheduler or None, "
                        f"received {type(scheduler).__name__}.")
    if not isinstance(model_name, str) or not model_name:
        raise ValueError(f"save_checkpoint: model_name must be a non-empty string, received "
                         f"{model_name!r}.")
    if not _is_int(epoch) or epoch < 0:
        raise ValueError(f"save_checkpoint: epoch must be a non-negative int, received "
                         f"{epoch!r}.")
    npz_path, json_path = checkpoint_paths(path)
    if not npz_path.parent.is_dir():
        raise FileNotFoundError(
            f"save_checkpoint: the directory {str(npz_path.parent)!r} does not exist."
        )

    arrays: dict[str, np.ndarray] = {"format/version": np.array(FORMAT_VERSION)}
    for key, value in model.state_dict().items():
        arrays[f"model/{key}"] = np.asarray(value)
    optimizer_meta = None
    if optimizer is not None:
        state = optimizer.state_dict()
        for index, values in state["state"].items():
            for name, value in values.items():
                arrays[f"optimizer/state/{index}/{name}"] = np.asarray(value)
        optimizer_meta = {"class": type(optimizer).__name__,
                          "param_groups": _json_data(state["param_groups"], "optimizer groups")}
    scheduler_meta = None
    if scheduler is not None:
        scheduler_meta = {"class": type(scheduler).__name__,
                          "state": _json_data(scheduler.state_dict(), "scheduler state")}
    arrays["rng/state"] = np.array(json.dumps(cnnlab_random.get_state()))

    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    payload = buffer.getvalue()
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "cnnlab_version": __version__,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "npz": npz_path.name,
        "npz_sha256": hashlib.sha256(payload).hexdigest(),
        "model": {"name": model_name,
                  "args": _json_data(dict(model_args or {}), "model_args"),
                  "parameters": model.num_parameters()},
        "epoch": int(epoch),
        "metrics": _json_data(dict(metrics or {}), "metrics"),
        "config": _json_data(dict(config or {}), "config"),
        "optimizer": optimizer_meta,
        "scheduler": scheduler_meta,
        "extra": _json_data(dict(extra or {}), "extra"),
    }
    text = json.dumps(metadata, indent=2, allow_nan=False) + "\n"
    _atomic_write(npz_path, payload)            # the .npz first: the JSON is the commit point
    _atomic_write(json_path, text.encode("utf-8"))
    return npz_path


# ---------------------------------------------------------------------------- loading
def _read_metadata(json_path: Path, npz_path: Path) -> dict[str, Any]:
    if not json_path.is_file():
        raise FileNotFoundError(
            f"checkpoint {str(npz_path)!r} has no metadata file {json_path.name!r} beside it; a "
            f"cnnlab checkpoint is a .npz file with a .json file of the same name."
        )
    try:
        metadata = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(
            f"checkpoint metadata {str(json_path)!r} is not valid JSON ({error})."
        ) from None
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise ValueError(
            f"{str(json_path)!r} is not the metadata of a cnnlab checkpoint (it lacks "
            f"\"format\": \"{FORMAT}\")."
        )
    version = metadata.get("format_version")
    if not _is_int(version) or version > FORMAT_VERSION:
        raise ValueError(
            f"checkpoint {str(json_path)!r} has format version {version!r}; this cnnlab "
            f"{__version__} reads versions up to {FORMAT_VERSION}."
        )
    model = metadata.get("model")
    if (not isinstance(model, dict) or not isinstance(model.get("name"), str)
            or not isinstance(model.get("args"), dict) or not _is_int(metadata.get("epoch"))
            or not isinstance(metadata.get("npz_sha256"), str)):
        raise ValueError(
            f"checkpoint metadata {str(json_path)!r} is incomplete: it needs model.name, "
            f"model.args, epoch and npz_sha256."
        )
    return metadata


def _read_arrays(npz_path: Path, expected_sha256: str, json_path: Path) -> dict[str, np.ndarray]:
    payload = npz_path.read_bytes()
    actual = hashlib.sha256(payload).hexdigest()
    if actual != expected_sha256:
        raise ValueError(
            f"checkpoint files do not belong together: {json_path.name!r} records SHA-256 "
            f"{expected_sha256[:12]}… for {npz_path.name!r}, but the file has {actual[:12]}… "
            f"(one of them was replaced, or a save was interrupted between the two files)."
        )
    try:
        with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        raise ValueError(
            f"{str(npz_path)!r} is not a readable checkpoint archive ({error})."
        ) from None
    if "format/version" not in arrays:
        raise ValueError(
            f"{str(npz_path)!r} is a .npz archive but not a cnnlab checkpoint (it has no "
            f"'format/version' entry)."
        )
    return arrays


def load_checkpoint(path: PathLike) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (or ``ModelCheckpoint``).

    Args:
        path: the ``.npz`` file, its ``.json`` twin, or the name without suffix.

    Returns:
        A :class:`Checkpoint` with the arrays and metadata.

    Raises:
        FileNotFoundError: the ``.npz`` or its ``.json`` is missing.
        ValueError: the files are not a cnnlab checkpoint, are damaged, or do not belong
            together.

    Example:
        >>> import tempfile, pathlib
        >>> from cnnlab import nn
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.npz"
        >>> _ = save_checkpoint(path, nn.Linear(4, 2), model_name="linear", epoch=3)
        >>> checkpoint = load_checkpoint(path)
        >>> checkpoint.epoch, sorted(checkpoint.model_state)
        (3, ['bias', 'weight'])
    """
    given = Path(path)
    if given.is_dir():
        found = sorted(p.name for p in given.glob("*.npz"))
        hint = f"; it holds {', '.join(found)}" if found else ""
        raise ValueError(
            f"expected a checkpoint file (.npz), received the directory {str(given)!r}{hint}."
        )
    npz_path, json_path = checkpoint_paths(given)
    if not npz_path.is_file():
        if given.is_file():               # an existing file that is no checkpoint (an image?)
            raise ValueError(f"expected a checkpoint file (.npz with its .json), received "
                             f"{str(given)!r}.")
        raise FileNotFoundError(f"checkpoint file {str(npz_path)!r} does not exist.")
    metadata = _read_metadata(json_path, npz_path)
    arrays = _read_arrays(npz_path, metadata["npz_sha256"], json_path)

    model_state = {key[len("model/"):]: value for key, value in arrays.items()
                   if key.startswith("model/")}
    optimizer_meta = metadata.get("optimizer")
    scheduler_meta = metadata.get("scheduler")
    optimizer_state = rng_state = None
    try:
        if isinstance(optimizer_meta, dict):
            state: dict[int, dict[str, np.ndarray]] = {}
            for key, value in arrays.items():
                if key.startswith("optimizer/state/"):
                    index, name = key[len("optimizer/state/"):].split("/", 1)
                    state.setdefault(int(index), {})[name] = value
            optimizer_state = {"state": state, "param_groups": optimizer_meta["param_groups"]}
        if isinstance(scheduler_meta, dict) and not {"class", "state"} <= scheduler_meta.keys():
            raise KeyError("scheduler class or state")
        if "rng/state" in arrays:
            rng_state = json.loads(str(arrays["rng/state"]))
    except (ValueError, KeyError, TypeError) as error:
        raise ValueError(f"checkpoint {str(npz_path)!r} is damaged: its optimizer, scheduler "
                         f"or random state cannot be read ({error!r}).") from None
    return Checkpoint(
        path=npz_path,
        model_name=metadata["model"]["name"],
        model_args=dict(metadata["model"]["args"]),
        model_state=model_state,
        epoch=int(metadata["epoch"]),
        metrics=dict(metadata.get("metrics") or {}),
        config=dict(metadata.get("config") or {}),
        optimizer_class=optimizer_meta["class"] if isinstance(optimizer_meta, dict) else None,
        optimizer_state=optimizer_state,
        scheduler_class=scheduler_meta["class"] if isinstance(scheduler_meta, dict) else None,
        scheduler_state=scheduler_meta["state"] if isinstance(scheduler_meta, dict) else None,
        rng_state=rng_state,
        extra=dict(metadata.get("extra") or {}),
        metadata=metadata,
    )


# ---------------------------------------------------------------------------- restoring
def restore_model(checkpoint: Checkpoint, model: Module) -> Module:
    """Copy the checkpoint's weights into ``model`` (which must have the same architecture).

    Example:
        >>> import tempfile, pathlib
        >>> from cnnlab import nn
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.npz"
        >>> _ = save_checkpoint(path, nn.Linear(4, 2), model_name="linear", epoch=0)
        >>> restore_model(load_checkpoint(path), nn.Linear(4, 2))
        Linear(in_features=4, out_features=2, bias=True)
    """
    try:
        model.load_state_dict(checkpoint.model_state)
    except ValueError as error:
        reason = str(error).removeprefix("load_state_dict: ")
        reason = reason.removeprefix(f"state does not fit {type(model).__name__}: ")
        raise ValueError(
            f"the weights of checkpoint {str(checkpoint.path)!r} (model "
            f"{checkpoint.model_name!r}) do not fit {type(model).__name__}: {reason}"
        ) from None
    return model


def restore(checkpoint: Checkpoint, build_model: Callable[..., Module]) -> Module:
    """Rebuild the model with ``build_model(name, **args)`` and load the checkpoint's weights.

    Args:
        checkpoint: from :func:`load_checkpoint`.
        build_model: a factory called as ``build_model(checkpoint.model_name,
            **checkpoint.model_args)``, such as a model registry's ``get``.

    Returns:
        The model with the saved weights, in training mode.

    Example:
        >>> import tempfile, pathlib
        >>> from cnnlab import nn
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.npz"
        >>> _ = save_checkpoint(path, nn.Linear(4, 2), model_name="linear",
        ...                     model_args={"in_features": 4, "out_features": 2}, epoch=0)
        >>> restore(load_checkpoint(path), lambda name, **args: nn.Linear(**args))
        Linear(in_features=4, out_features=2, bias=True)
    """
    name, args = checkpoint.model_name, checkpoint.model_args
    try:
        model = build_model(name, **args)
    except (TypeError, ValueError, KeyError) as error:
        message = error.args[0] if isinstance(error, KeyError) and error.args else error
        raise type(error)(
            f"cannot rebuild model {name!r} with arguments {args} from checkpoint "
            f"{str(checkpoint.path)!r}: {message}"
        ) from None
    if not isinstance(model, Module):
        raise TypeError(
            f"build_model must return a cnnlab.nn.Module, received {type(model).__name__} for "
            f"model {name!r}."
        )
    return restore_model(checkpoint, model)


def restore_training(checkpoint: Checkpoint, model: Module | None = None,
                     optimizer: Optimizer | None = None, scheduler: LRScheduler | None = None,
                     *, rng: bool = True) -> int:
    """Load weights, optimiser, scheduler and random state saved in ``checkpoint``, to resume.

    Build the model, the optimiser over its parameters and the scheduler over the optimiser
    exactly as in the first run, then call this: training continued with
    ``fit(..., start_epoch=returned)`` gives the same weights as an uninterrupted run.

    Args:
        checkpoint: from :func:`load_checkpoint`.
        model: the freshly built model to load the weights into (None: leave it).
        optimizer: a fresh optimiser of the saved class over the model's parameters.
        scheduler: a fresh scheduler of the saved class over ``optimizer``, or None.
        rng: also restore cnnlab's random generator (dropout), as saved. It is restored last,
            but building a model draws from the generator, so build everything first.

    Returns:
        The number of completed epochs, the ``start_epoch`` for ``fit``.

    Example:
        >>> import tempfile, pathlib
        >>> from cnnlab import nn, optim
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "last.npz"
        >>> model = nn.Linear(4, 2)
        >>> _ = save_checkpoint(path, model, optim.SGD(model.parameters(), lr=0.1),
        ...                     model_name="linear", epoch=5)
        >>> fresh = nn.Linear(4, 2)
        >>> restore_training(load_checkpoint(path), fresh, optim.SGD(fresh.parameters(), lr=0.1))
        5
    """
    if model is not None:
        restore_model(checkpoint, model)
    where = f"checkpoint {str(checkpoint.path)!r}"
    if optimizer is not None:
        if checkpoint.optimizer_state is None:
            raise ValueError(f"{where} was saved without an optimizer state, so its optimizer "
                             f"cannot be resumed.")
        if checkpoint.optimizer_class != type(optimizer).__name__:
            raise ValueError(
                f"{where} holds the state of a {checkpoint.optimizer_class} optimizer, received "
                f"a {type(optimizer).__name__} to restore it into."
            )
        try:
            optimizer.load_state_dict(checkpoint.optimizer_state)
        except (TypeError, ValueError) as error:
            raise type(error)(f"{where}: {error}") from None
    if scheduler is not None:
        if checkpoint.scheduler_state is None:
            raise ValueError(f"{where} was saved without a learning-rate scheduler, received a "
                             f"{type(scheduler).__name__} to restore.")
        if checkpoint.scheduler_class != type(scheduler).__name__:
            raise ValueError(
                f"{where} holds the state of a {checkpoint.scheduler_class} scheduler, received "
                f"a {type(scheduler).__name__} to restore it into."
            )
        scheduler.load_state_dict(checkpoint.scheduler_state)
    if rng and checkpoint.rng_state is not None:
        cnnlab_random.set_state(checkpoint.rng_state)
    return checkpoint.epoch
