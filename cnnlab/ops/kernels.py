"""Which kernels run: the NumPy reference or compiled loops (numba), and how to compile them.

cnnlab's ops are written twice where it pays: in NumPy (the reference, always installed and
always tested) and, for the layers people learn with, as compiled loops (``numba``, the ``fast``
extra: ``pip install "cnnlab[fast]"``). The compiled kernels are the lecture's loops, compiled
by LLVM; the rule in each op family (``conv.choose_algorithm``) picks them when they
are installed and the shape is one they handle, and they agree with the NumPy path to float32
rounding.

``CNNLAB_KERNELS`` forces a path: ``numpy`` (never compile), ``compiled`` (numba must be
installed: an error otherwise), or ``auto`` (the default: compiled when numba is installed).
Tests and comparisons use :func:`forced_kernels`.

Compiled code is cached on disk, so only the first run of a new installation compiles (a few
seconds, measured by ``cnnlab bench``): beside the package when that folder is writable,
otherwise in numba's per-user cache folder (``NUMBA_CACHE_DIR`` overrides both).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager

CHOICES = ("auto", "numpy", "compiled")
# The dtypes the compiled loops take (others keep the NumPy path).
FLOATS = ("float32", "float64")
_forced: list[str] = []


def numba_installed() -> bool:
    """Whether the ``numba`` package can be imported (checked without importing it)."""
    return importlib.util.find_spec("numba") is not None


def requested() -> str:
    """The path asked for: the innermost :func:`forced_kernels`, else ``CNNLAB_KERNELS``."""
    if _forced:
        return _forced[-1]
    value = os.environ.get("CNNLAB_KERNELS", "auto").strip().lower() or "auto"
    if value not in CHOICES:
        raise ValueError(f"CNNLAB_KERNELS: expected one of {', '.join(CHOICES)}, received "
                         f"{value!r}.")
    return value


def use_compiled() -> bool:
    """True when the compiled kernels should run (asked for, or ``auto`` and installed)."""
    choice = requested()
    if choice == "numpy":
        return False
    if choice == "compiled" and not _available():
        raise ValueError("CNNLAB_KERNELS=compiled needs numba, which is not installed "
                         "(pip install \"cnnlab[fast]\").")
    return _available()


_installed: bool | None = None


def _available() -> bool:
    global _installed
    if _installed is None:
        _installed = numba_installed()
    return _installed


def active() -> str:
    """``"compiled"`` or ``"numpy"``: the path that runs now (for reports and benchmarks)."""
    return "compiled" if use_compiled() else "numpy"


@contextmanager
def forced_kernels(choice: str) -> Iterator[None]:
    """Within the block, ops take the ``choice`` path (``numpy``, ``compiled`` or ``auto``).

    >>> with forced_kernels("numpy"):
    ...     active()
    'numpy'
    """
    if choice not in CHOICES:
        raise ValueError(f"forced_kernels: expected one of {CHOICES}, received {choice!r}.")
    _forced.append(choice)
    try:
        yield
    finally:
        _forced.pop()


def jit(fn: Callable | None = None, *, divides: bool = False) -> Callable:
    """Compile ``fn`` lazily with numba (no GIL, cached on disk); numba is imported on first use.

    The kernels run on cnnlab's own thread pool (``parallel.run_blocks``), one block of outer
    iterations per call, so they are compiled without numba's threading (``parallel=False``):
    no second pool of threads competes with BLAS's for the cores. A kernel may call another
    ``@jit`` function of its module: it calls that function's compiled form.

    ``@jit(divides=True)``: NumPy's error model, where a float division by zero gives infinity
    or NaN (as the NumPy path does) instead of raising ``ZeroDivisionError``. numba otherwise
    checks every division, and the check keeps LLVM from vectorising a loop that divides
    (Adam's update of 48,000 float32 values: 118 -> 27 µs).
    """
    if fn is None:
        return functools.partial(jit, divides=divides)
    compiled: list[Callable] = []

    def dispatcher() -> Callable:
        if not compiled:
            import numba
            # The other kernels this one calls, as their compiled forms.
            env = dict(fn.__globals__)
            for name in fn.__code__.co_names:
                if hasattr(env.get(name), "dispatcher"):
                    env[name] = env[name].dispatcher()
            for name, compiled_form in _MARKERS.items():  # see wide_vectors, etc.
                if name in fn.__code__.co_names:
                    env[name] = compiled_form()
            body = types.FunctionType(fn.__code__, env, fn.__name__, fn.__defaults__)
            body.__qualname__, body.__module__ = fn.__qualname__, fn.__module__
            compiled.append(numba.njit(nogil=True, cache=True, fastmath=_FASTMATH,
                                       error_model="numpy" if divides else "python")(body))
        return compiled[0]

    def call(*args):
        return dispatcher()(*args)

    call.__name__ = fn.__name__
    call.__doc__ = fn.__doc__
    call.py_func = fn                     # the plain-Python loops, for tests and reading
    call.dispatcher = dispatcher
    return call


# Reassociating sums lets LLVM vectorise the reductions of the weight gradient (the result
# changes only by float rounding, the same on every run of a given machine); contraction lets
# it use fused multiply-add. No "nnan"/"ninf": NaN and infinity must propagate as in NumPy.
_FASTMATH = {"reassoc", "contract"}


def wide_vectors() -> None:
    """Called first in a kernel: compile it for 512-bit vectors where the CPU has them.

    LLVM's tuning for Intel's AVX-512 CPUs prefers 256-bit vectors (wider ones lowered the
    clock on older parts, and short loops run scalar more often, see conv_compiled's "Short
    loops"). The kernels whose loops are long runs of multiply-adds in the L1 cache (the
    depthwise 3×3 loops, the direct kernels' flat tap passes) measured faster with 512-bit
    ones, same process, Intel Xeon with AVX-512: depthwise 3×3 64 ch, 32×32×32, two threads,
    forward 0.557-0.564 -> 0.513-0.529 ms, backward 1.21-1.25 -> 1.14-1.15; forward and
    backward of LeNet-5's first layer 0.777 -> 0.719 ms, its second 1.214 -> 1.190, the
    11×11 blur 5.59 -> 5.20 (LeNet-5 training steps 2.996 -> 2.962 ms).
    The kernel's LLVM function gets the attribute ``prefer-vector-width=512``; on CPUs
    without AVX-512 it changes nothing. In plain Python (``py_func``) it does nothing.
    """


def distinct_arrays() -> None:
    """Called first in a kernel: promise that no two of its array arguments share memory
    that the kernel writes (each output is reached through one argument only).

    Without the promise, LLVM checks before every vectorised loop that writes an array
    whether the arrays overlap, and runs the loop scalar when they might: checks that cost
    more than the loop itself when the loop is a row of 32 (a 3×3 kernel's two rows of
    output read through twelve pointers: 24 comparisons for two turns of the loop). With
    it, depthwise 3×3 dX on a 32×32 plane, one thread, in the cache: 0.345 -> 0.27 µs
    (backward of depthwise 3×3 64 ch, 32×32×32, two threads: 1.49 -> 1.35 ms); the direct
    kernels' epilogue (:func:`~cnnlab.ops.conv_compiled._finish`, rows of 28 and 10):
    LeNet-5 training steps 3.10-3.12 -> 2.83-2.91 ms. (Marking the window-matrix and
    pooling kernels too changed nothing measurable: they are not marked.)
    The kernel's LLVM function gets ``noalias`` on its pointer arguments (what numba's own
    ``noalias`` flag does for the kernels it generates). In plain Python it does nothing.
    """


def _function_marker(mark: Callable) -> Callable:
    """A numba intrinsic of no arguments that calls ``mark(function)`` on the LLVM function it
    is compiled into: the compiled form of a marker such as :func:`wide_vectors`."""
    from numba import types as numba_types
    from numba.extending import intrinsic

    @intrinsic
    def marker(typingctx):
        def codegen(context, builder, signature, args):
            mark(builder.function)
            return context.get_dummy_value()
        return numba_types.none(), codegen
    return marker


@functools.cache
def _wide_vectors_intrinsic() -> Callable:
    """The compiled form of :func:`wide_vectors` (llvmlite lists no string attributes, so the
    set is added to directly; should that fail, the kernel keeps LLVM's default width)."""
    def mark(function) -> None:
        try:
            set.add(function.attributes, '"prefer-vector-width"="512"')
        except (AttributeError, TypeError):   # pragma: no cover - llvmlite changed
            pass
    return _function_marker(mark)


@functools.cache
def _distinct_arrays_intrinsic() -> Callable:
    """The compiled form of :func:`distinct_arrays`: ``noalias`` on every pointer argument."""
    from llvmlite import ir

    def mark(function) -> None:
        for argument in function.args:
            if isinstance(argument.type, ir.PointerType):
                argument.add_attribute("noalias")
    return _function_marker(mark)


_MARKERS = {"wide_vectors": _wide_vectors_intrinsic,
            "distinct_arrays": _distinct_arrays_intrinsic}
