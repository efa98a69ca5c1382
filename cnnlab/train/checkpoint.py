"""Checkpoints: one ``.safetensors`` file per checkpoint, committed by one atomic rename.

A checkpoint saved as ``run/model.safetensors`` is a safetensors file (see
:mod:`cnnlab.train.safetensors_format`) that anyone can open without cnnlab
(``safetensors.torch.load_file``), holding

- the model's ``state_dict`` under its own keys (``0.weight``, ``1.running_mean``...), the names
  the equivalent ``torch.nn`` model uses;
- the optimiser's per-parameter arrays under ``optimizer/<index>/<name>`` (momentum buffers,
  Adam's moments and ``step``);
- in the header's ``__metadata__["cnnlab"]``, a JSON description: model name and arguments,
  training configuration (data set, input standardisation, class names...), completed epochs,
  metrics, the history of all epochs so far, the optimiser's class and ``param_groups``, the
  lr-scheduler's class and state, cnnlab's random-generator state, and the SHA-256 of the tensor
  data (``weights_sha256``).

The file is written to a temporary file in the same directory, flushed and fsynced, moved into
place with one ``os.replace`` and the directory fsynced: a reader, or a process killed at any
moment, sees the old checkpoint or the new one, never a mixture. Loading checks every declared
size against the file and a cap before allocating, checks the SHA-256, and never runs code.

Checkpoints of cnnlab 0.1 (``model.npz`` with ``model.json`` beside it, format version 1) still
load.

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
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .. import __version__
from .. import random as cnnlab_random
from .._validate import _is_int
from ..nn.module import Module
from ..nn.parameter import parameter_limit
from ..optim.lr_scheduler import LRScheduler
from ..optim.optimizer import Optimizer
from . import safetensors_format as st

FORMAT = "cnnlab-checkpoint"
FORMAT_VERSION = 2
SUFFIX = ".safetensors"
#: Most tensor elements a checkpoint may declare (2 GiB of float32; LeNet-5 has 61,706).
MAX_ELEMENTS = 1 << 29
_OPTIMIZER = "optimizer/"
_TEMPORARY = ".tmp"

PathLike = str | os.PathLike


class CheckpointError(ValueError):
    """A file that is not a usable cnnlab checkpoint; the message says why in one sentence."""


@dataclass
class Checkpoint:
    """What ``load_checkpoint`` read: the arrays and the metadata of one checkpoint.

    Attributes:
        path: the checkpoint file (``.safetensors``; ``.npz`` for a version-1 checkpoint).
        model_name: the name the model was saved under (for a factory such as
            ``cnnlab.models.get``).
        model_args: keyword arguments that rebuild the model with that factory.
        model_state: the model's ``state_dict`` (name -> array).
        epoch: epochs completed when it was saved; pass it to ``fit(start_epoch=...)``.
        metrics: the metrics saved with it (e.g. the epoch's ``val_accuracy``).
        config: the training configuration saved with it.
        history: the per-epoch logs of all epochs up to this one (empty if none were saved).
        optimizer_class: class name of the saved optimiser, or None.
        optimizer_state: the optimiser's ``state_dict()``, or None.
        scheduler_class: class name of the saved lr-scheduler, or None.
        scheduler_state: the scheduler's ``state_dict()``, or None.
        rng_state: the state of cnnlab's random generator, or None.
        extra: more metadata (``fit``'s settings, whether training was interrupted...).
        metadata: the whole JSON description.
    """

    path: Path
    model_name: str
    model_args: dict[str, Any]
    model_state: dict[str, np.ndarray] = field(repr=False)
    epoch: int
    metrics: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)
    optimizer_class: str | None = None
    optimizer_state: dict[str, Any] | None = field(default=None, repr=False)
    scheduler_class: str | None = None
    scheduler_state: dict[str, Any] | None = None
    rng_state: dict[str, Any] | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict, repr=False)


# ---------------------------------------------------------------------------- paths and files
def checkpoint_path(path: PathLike) -> Path:
    """The file a checkpoint named ``path`` lives in: ``NAME.safetensors``.

    Example:
        >>> checkpoint_path("runs/model").name, checkpoint_path("runs/best.safetensors").name
        ('model.safetensors', 'best.safetensors')
    """
    path = Path(path)
    return path if path.name.endswith(SUFFIX) else path.with_name(path.name + SUFFIX)


def atomic_write(path: PathLike, chunks: Iterable[bytes | memoryview] | bytes) -> None:
    """Write ``chunks`` to ``path`` so that it is either the old file or the whole new one.

    The bytes go to a temporary file beside ``path`` (``.NAME.PID.RANDOM.tmp``), which is
    flushed and fsynced, then moved over ``path`` with one ``os.replace`` (atomic on POSIX and
    Windows), and the directory is fsynced so that the rename survives a power cut. If anything
    fails, the temporary file is removed and ``path`` is untouched; a process killed before the
    rename leaves only the temporary file, which :func:`remove_stale_temporaries` cleans.
    """
    path = Path(path)
    if isinstance(chunks, (bytes, bytearray, memoryview)):
        chunks = [chunks]
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}{_TEMPORARY}")
    try:
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        with os.fdopen(fd, "wb") as file:
            for chunk in chunks:
                file.write(chunk)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)                  # the commit: one atomic rename
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


def _pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists (a process of another user counts as alive)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def remove_stale_temporaries(directory: PathLike) -> list[Path]:
    """Delete the temporary files of :func:`atomic_write` left in ``directory`` by processes
    that no longer run (killed during a save); returns the paths removed."""
    removed = []
    for candidate in Path(directory).glob(f".*{_TEMPORARY}"):
        parts = candidate.name.rsplit(".", 3)               # .NAME . PID . RANDOM . tmp
        if len(parts) != 4 or not parts[1].isdigit():
            continue
        pid = int(parts[1])
        if pid == os.getpid() or _pid_alive(pid):           # a save under way, perhaps
            continue
        with contextlib.suppress(OSError):
            candidate.unlink()
            removed.append(candidate)
    return removed


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
                    extra: Mapping[str, Any] | None = None,
                    history: Sequence[Mapping[str, Any]] | None = None) -> Path:
    """Save model, optimiser, scheduler and random state as one ``NAME.safetensors`` file.

    Args:
        path: ``NAME.safetensors`` (or ``NAME``); the directory must exist.
        model: the model whose ``state_dict`` is saved.
        optimizer: the optimiser to resume (its arrays and ``param_groups``), or None.
        model_name: the name that rebuilds the model with a factory (``"lenet5"``).
        model_args: keyword arguments of that factory (JSON data).
        config: the training configuration to keep with the weights (JSON data).
        epoch: epochs completed (the ``start_epoch`` of a resumed run).
        metrics: metrics to record (NumPy numbers are converted, NaN becomes null).
        scheduler: the learning-rate scheduler to resume, or None.
        extra: any further JSON metadata (``fit`` stores its settings here).
        history: the per-epoch logs so far (``History.epochs``), kept with the weights.

    Returns:
        The path of the file.

    Example:
        >>> import tempfile, pathlib
        >>> from cnnlab import nn
        >>> folder = pathlib.Path(tempfile.mkdtemp())
        >>> model = nn.Sequential(nn.Linear(4, 2))
        >>> save_checkpoint(folder / "model", model, model_name="linear", epoch=0).name
        'model.safetensors'
        >>> sorted(p.name for p in folder.iterdir())
        ['model.safetensors']
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
    if Path(path).suffix in (".npz", ".json"):
        raise ValueError(f"save_checkpoint writes one {SUFFIX} file; received {str(path)!r} "
                         f"(the two-file .npz + .json format is read, no longer written).")
    file = checkpoint_path(path)
    if not file.parent.is_dir():
        raise FileNotFoundError(
            f"save_checkpoint: the directory {str(file.parent)!r} does not exist."
        )

    tensors: dict[str, np.ndarray] = {}
    for key, value in model.state_dict().items():
        if key.startswith(_OPTIMIZER):
            raise ValueError(f"save_checkpoint: the model's state key {key!r} collides with "
                             f"the optimizer's {_OPTIMIZER!r} prefix.")
        tensors[key] = np.asarray(value)
    optimizer_meta = None
    if optimizer is not None:
        state = optimizer.state_dict()
        for index, values in state["state"].items():
            for name, value in values.items():
                tensors[f"{_OPTIMIZER}{index}/{name}"] = np.asarray(value)
        optimizer_meta = {"class": type(optimizer).__name__,
                          "param_groups": _json_data(state["param_groups"], "optimizer groups")}
    scheduler_meta = None
    if scheduler is not None:
        scheduler_meta = {"class": type(scheduler).__name__,
                          "state": _json_data(scheduler.state_dict(), "scheduler state")}
    digest = hashlib.sha256()
    for value in tensors.values():
        digest.update(np.ascontiguousarray(value, dtype=value.dtype.newbyteorder("<")))
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "cnnlab_version": __version__,
        "saved_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "weights_sha256": digest.hexdigest(),
        "model": {"name": model_name,
                  "args": _json_data(dict(model_args or {}), "model_args"),
                  "parameters": model.num_parameters()},
        "epoch": int(epoch),
        "metrics": _json_data(dict(metrics or {}), "metrics"),
        "config": _json_data(dict(config or {}), "config"),
        "history": _json_data(list(history or []), "history"),
        "optimizer": optimizer_meta,
        "scheduler": scheduler_meta,
        "rng_state": _json_data(cnnlab_random.get_state(), "random state"),
        "extra": _json_data(dict(extra or {}), "extra"),
    }
    description = json.dumps(metadata, allow_nan=False)
    # "format": "pt" tells safetensors-aware tools the tensors carry PyTorch's names.
    atomic_write(file, st.encode(tensors, {"format": "pt", "cnnlab": description}))
    return file


# ---------------------------------------------------------------------------- loading
def _fail(where: str, reason: str) -> CheckpointError:
    return CheckpointError(f"checkpoint {where} {reason}")


def _check_metadata(metadata: Any, where: str, checksum_key: str) -> dict[str, Any]:
    """The description's required entries, each missing one named in its own sentence."""
    if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
        raise CheckpointError(f"{where} is not a cnnlab checkpoint (its description lacks "
                              f"\"format\": \"{FORMAT}\").")
    version = metadata.get("format_version")
    if not _is_int(version) or version > FORMAT_VERSION:
        raise _fail(where, f"has format version {version!r}; this cnnlab {__version__} reads "
                           f"versions up to {FORMAT_VERSION}.")
    model = metadata.get("model")
    if not isinstance(model, dict):
        raise _fail(where, "has no 'model' entry (the model's name and arguments).")
    if not isinstance(model.get("name"), str) or not model["name"]:
        raise _fail(where, "has no model.name (the name that rebuilds the model).")
    if not isinstance(model.get("args"), dict):
        raise _fail(where, "has no model.args (the arguments that rebuild the model).")
    if not _is_int(metadata.get("epoch")) or metadata["epoch"] < 0:
        raise _fail(where, f"has no valid 'epoch' (completed epochs), received "
                           f"{metadata.get('epoch')!r}.")
    if not isinstance(metadata.get(checksum_key), str):
        raise _fail(where, f"has no {checksum_key!r} (the SHA-256 that proves its weights "
                           f"intact).")
    if not isinstance(metadata.get("config"), dict):
        raise _fail(where, "has no 'config' entry (the training configuration with its input "
                           "standardisation); without it the model would see unstandardised "
                           "inputs.")
    for key in ("metrics", "extra"):
        if not isinstance(metadata.get(key) or {}, dict):
            raise _fail(where, f"has a {key!r} entry that is not a JSON object.")
    if not isinstance(metadata.get("history") or [], list):
        raise _fail(where, "has a 'history' entry that is not a list of epochs.")
    classes, outputs = metadata["config"].get("classes"), model["args"].get("num_classes")
    if classes is not None and (not isinstance(classes, list)
                                or (_is_int(outputs) and len(classes) != outputs)):
        count = len(classes) if isinstance(classes, list) else classes
        raise _fail(where, f"names {count!r} classes but its model has {outputs} outputs "
                           f"(model.args.num_classes).")
    return metadata


def _check_weights(model_state: Mapping[str, np.ndarray], where: str) -> None:
    for key, value in model_state.items():
        if np.issubdtype(value.dtype, np.floating):
            if not np.isfinite(value).all():
                raise _fail(where, f"has non-finite weights (NaN or inf) in {key!r}.")
        elif not (key.endswith("num_batches_tracked") and np.issubdtype(value.dtype, np.integer)):
            raise _fail(where, f"stores {key!r} as {value.dtype}; weights must be "
                               f"floating-point.")


def _open_file(given: Path) -> Path:
    """The checkpoint file meant by ``given`` (a name without suffix finds either format)."""
    if given.is_dir():
        found = sorted(p.name for p in given.iterdir()
                       if p.name.endswith(SUFFIX) or p.suffix == ".npz")
        hint = f"; it holds {', '.join(found)}" if found else ""
        raise CheckpointError(f"expected a checkpoint file ({SUFFIX}), received the directory "
                              f"{str(given)!r}{hint}.")
    if given.is_file():
        return given
    for candidate in (checkpoint_path(given), given.with_name(given.name + ".npz")):
        if given.suffix not in (SUFFIX, ".npz", ".json") and candidate.is_file():
            return candidate
    raise FileNotFoundError(f"checkpoint file {str(given)!r} does not exist.")


def load_checkpoint(path: PathLike, *, max_elements: int = MAX_ELEMENTS) -> Checkpoint:
    """Read a checkpoint written by :func:`save_checkpoint` (or ``ModelCheckpoint``).

    Nothing in the file is trusted: the header's length, every tensor's shape and offsets are
    checked against the file's size and ``max_elements`` before anything is allocated, the
    weights' SHA-256 must match the one recorded, weights must be finite floating-point numbers,
    and a missing entry of the description is named in a one-sentence :class:`CheckpointError`.

    Args:
        path: the ``.safetensors`` file or its name without suffix; a version-1 checkpoint's
            ``.npz`` (or its ``.json``).
        max_elements: the most tensor elements the file may declare in all.

    Returns:
        A :class:`Checkpoint` with the arrays and the description.

    Raises:
        FileNotFoundError: there is no such file.
        CheckpointError: (a ``ValueError``) the file is not a cnnlab checkpoint, is damaged,
            too large, or incomplete.

    Example:
        >>> import tempfile, pathlib
        >>> from cnnlab import nn
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
        >>> _ = save_checkpoint(path, nn.Linear(4, 2), model_name="linear", epoch=3)
        >>> checkpoint = load_checkpoint(path)
        >>> checkpoint.epoch, sorted(checkpoint.model_state)
        (3, ['bias', 'weight'])
    """
    file = _open_file(Path(path))
    if file.suffix in (".npz", ".json"):
        return _load_version_1(file, max_elements)
    where = repr(str(file))
    with open(file, "rb") as stream:
        size = os.fstat(stream.fileno()).st_size
        try:
            header = st.read_header(stream, size, where, max_elements)
        except st.FormatError as error:
            if size >= 8 and not _looks_like_safetensors(file):
                raise CheckpointError(f"expected a checkpoint file ({SUFFIX}), received "
                                      f"{where}.") from None
            raise CheckpointError(f"checkpoint {error}") from None
        if "cnnlab" not in header.metadata:
            raise CheckpointError(f"{where} is a safetensors file but not a cnnlab checkpoint "
                                  f"(its __metadata__ has no 'cnnlab' description).")
        try:
            metadata = st.parse_json(header.metadata["cnnlab"], f"the description of {where}")
        except st.FormatError as error:
            raise CheckpointError(f"checkpoint {error}") from None
        metadata = _check_metadata(metadata, where, "weights_sha256")
        digest = hashlib.sha256()
        try:
            arrays = st.read_tensors(stream, header, digest)
        except st.FormatError as error:
            raise _fail(where, f"is damaged: {error}") from None
    if digest.hexdigest() != metadata["weights_sha256"]:
        raise _fail(where, f"is damaged: its tensors have SHA-256 {digest.hexdigest()[:12]}…, "
                           f"its description records {metadata['weights_sha256'][:12]}….")
    model_state = {k: v for k, v in arrays.items() if not k.startswith(_OPTIMIZER)}
    optimizer_arrays = {k[len(_OPTIMIZER):]: v for k, v in arrays.items()
                        if k.startswith(_OPTIMIZER)}
    return _checkpoint(file, metadata, model_state, optimizer_arrays,
                       metadata.get("rng_state"), where)


def _looks_like_safetensors(file: Path) -> bool:
    with open(file, "rb") as stream:
        start = stream.read(9)
    return len(start) == 9 and start[8:9] == b"{"


def _checkpoint(file: Path, metadata: dict[str, Any], model_state: dict[str, np.ndarray],
                optimizer_arrays: dict[str, np.ndarray], rng_state: Any,
                where: str) -> Checkpoint:
    """Assemble and check what both formats read (optimizer arrays keyed ``INDEX/NAME``)."""
    _check_weights(model_state, where)
    optimizer_meta, scheduler_meta = metadata.get("optimizer"), metadata.get("scheduler")
    optimizer_state = None
    if optimizer_meta is not None:
        if (not isinstance(optimizer_meta, dict) or not isinstance(optimizer_meta.get("class"), str)
                or not isinstance(optimizer_meta.get("param_groups"), list)):
            raise _fail(where, "has an 'optimizer' entry without its class and param_groups.")
        state: dict[int, dict[str, np.ndarray]] = {}
        for key, value in optimizer_arrays.items():
            index, _, name = key.partition("/")
            if not index.isdigit() or not name:
                raise _fail(where, f"has an optimizer array named {key!r}; expected "
                                   f"INDEX/NAME.")
            state.setdefault(int(index), {})[name] = value
        optimizer_state = {"state": state, "param_groups": optimizer_meta["param_groups"]}
    if scheduler_meta is not None and (not isinstance(scheduler_meta, dict)
                                       or not isinstance(scheduler_meta.get("class"), str)
                                       or not isinstance(scheduler_meta.get("state"), dict)):
        raise _fail(where, "has a 'scheduler' entry without its class and state.")
    if rng_state is not None and not isinstance(rng_state, dict):
        raise _fail(where, "has a random state that is not a JSON object.")
    return Checkpoint(
        path=file,
        model_name=metadata["model"]["name"],
        model_args=dict(metadata["model"]["args"]),
        model_state=model_state,
        epoch=int(metadata["epoch"]),
        metrics=dict(metadata.get("metrics") or {}),
        config=dict(metadata["config"]),
        history=list(metadata.get("history") or []),
        optimizer_class=optimizer_meta["class"] if optimizer_meta else None,
        optimizer_state=optimizer_state,
        scheduler_class=scheduler_meta["class"] if scheduler_meta else None,
        scheduler_state=scheduler_meta["state"] if scheduler_meta else None,
        rng_state=rng_state,
        extra=dict(metadata.get("extra") or {}),
        metadata=metadata,
    )


def _load_version_1(file: Path, max_elements: int) -> Checkpoint:
    """A cnnlab 0.1 checkpoint: ``NAME.npz`` of arrays with ``NAME.json`` beside it."""
    npz_path, json_path = file.with_suffix(".npz"), file.with_suffix(".json")
    where = repr(str(npz_path))
    if not npz_path.is_file():
        raise FileNotFoundError(f"checkpoint file {where} does not exist.")
    if not json_path.is_file():
        raise FileNotFoundError(
            f"checkpoint {where} has no metadata file {json_path.name!r} beside it; a version-1 "
            f"cnnlab checkpoint is a .npz file with a .json file of the same name."
        )
    if json_path.stat().st_size > st.MAX_HEADER_BYTES:
        raise _fail(where, f"has a description of {json_path.stat().st_size:,} bytes; at most "
                           f"{st.MAX_HEADER_BYTES:,} are accepted.")
    try:
        metadata = st.parse_json(json_path.read_bytes(), f"checkpoint metadata "
                                                         f"{str(json_path)!r}")
    except st.FormatError as error:
        raise CheckpointError(str(error)) from None
    metadata = _check_metadata(metadata, where, "npz_sha256")
    payload = npz_path.read_bytes()
    actual = hashlib.sha256(payload).hexdigest()
    if actual != metadata["npz_sha256"]:
        raise CheckpointError(
            f"checkpoint files do not belong together: {json_path.name!r} records SHA-256 "
            f"{metadata['npz_sha256'][:12]}… for {npz_path.name!r}, but the file has "
            f"{actual[:12]}… (one of them was replaced, or a save was interrupted between the "
            f"two files)."
        )
    try:
        with zipfile.ZipFile(io.BytesIO(payload)) as archive:
            declared = elements = 0
            for info in archive.infolist():          # shapes from the .npy headers first
                with archive.open(info) as member:
                    version = np.lib.format.read_magic(member)
                    read = (np.lib.format.read_array_header_1_0 if version == (1, 0)
                            else np.lib.format.read_array_header_2_0)
                    shape, _, dtype = read(member)
                elements += math.prod(shape)
                declared += math.prod(shape) * dtype.itemsize
                if declared > len(payload) or elements > max_elements:
                    raise _fail(where, f"declares arrays of {declared:,} bytes ({elements:,} "
                                       f"elements) in a file of {len(payload):,} bytes.")
        with np.load(io.BytesIO(payload), allow_pickle=False) as archive:
            arrays = {key: archive[key] for key in archive.files}
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
        if isinstance(error, CheckpointError):
            raise
        raise CheckpointError(f"{where} is not a readable checkpoint archive ({error}).") from None
    if "format/version" not in arrays:
        raise CheckpointError(f"{where} is a .npz archive but not a cnnlab checkpoint (it has "
                              f"no 'format/version' entry).")
    rng_state = None
    if "rng/state" in arrays:
        try:
            rng_state = json.loads(str(arrays["rng/state"]))
        except ValueError:
            raise _fail(where, "has a random state that is not JSON.") from None
    prefix = "optimizer/state/"
    return _checkpoint(npz_path, metadata,
                       {k[len("model/"):]: v for k, v in arrays.items() if k.startswith("model/")},
                       {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)},
                       rng_state, where)


# ---------------------------------------------------------------------------- restoring
def restore_model(checkpoint: Checkpoint, model: Module) -> Module:
    """Copy the checkpoint's weights into ``model`` (which must have the same architecture).

    Example:
        >>> import tempfile, pathlib
        >>> from cnnlab import nn
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
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
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "model.safetensors"
        >>> _ = save_checkpoint(path, nn.Linear(4, 2), model_name="linear",
        ...                     model_args={"in_features": 4, "out_features": 2}, epoch=0)
        >>> restore(load_checkpoint(path), lambda name, **args: nn.Linear(**args))
        Linear(in_features=4, out_features=2, bias=True)
    """
    name, args = checkpoint.model_name, checkpoint.model_args
    # The weights in the file bound the model: arguments that build a larger one (a hostile
    # ``input_size: 1000000``) stop at the first parameter over that count, before allocating.
    stored = sum(int(v.size) for v in checkpoint.model_state.values())
    try:
        with parameter_limit(stored, "these arguments"):
            model = build_model(name, **args)
    except MemoryError:
        raise CheckpointError(
            f"cannot rebuild model {name!r} with arguments {args} from checkpoint "
            f"{str(checkpoint.path)!r}: it would not fit in memory, while the file holds "
            f"{stored:,} weights.") from None
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
        >>> path = pathlib.Path(tempfile.mkdtemp()) / "last.safetensors"
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
