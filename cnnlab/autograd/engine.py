"""The reverse pass: walk the recorded graph from an output back to its leaves.

Each recorded tensor holds its parents and a closure ``backward(dy) -> (d_parent, ...)``.
``run_backward`` orders the graph topologically with an explicit stack (deep graphs cannot
overflow Python's recursion limit), then applies the chain rule node by node: gradients of a
tensor used several times add up, and leaves accumulate into ``.grad`` as in PyTorch.
"""

from __future__ import annotations

import numpy as np


def freed(dy: np.ndarray):
    raise RuntimeError(
        "backward() reached a tensor whose graph an earlier backward() already freed; pass "
        "retain_graph=True to the first backward() to go through the graph twice."
    )


def run_backward(root, seed: np.ndarray, retain_graph: bool = False) -> None:
    """Propagate ``seed = dL/d root`` to every leaf that requires a gradient."""
    grads: dict[int, np.ndarray] = {id(root): seed}
    given: set[int] = set()       # the memory handed to leaves (alive as their .grad)
    for node in reversed(_topological_order(root)):
        g = grads.pop(id(node), None)
        if g is None:
            continue
        if node._backward is None:                        # a leaf: accumulate
            # Never alias the caller's dy, a dy a step passed through (read-only, as every
            # view of it), or memory another leaf holds; what a step has just made (a new
            # array or a view of one) becomes the leaf's own.
            owner = g if g.base is None else g.base
            if (g is seed or not g.flags.writeable or id(owner) in given
                    or g.dtype != node.data.dtype):
                g = owner = g.astype(node.data.dtype, copy=True)
            given.add(id(owner))
            node.grad = g if node.grad is None else np.asarray(node.grad + g)
            continue
        if node._backward is freed:
            freed(g)
        g = g.view()
        g.flags.writeable = False          # dy may be shared: closures must not modify it
        parent_grads = node._backward(g)
        if len(parent_grads) != len(node._parents):
            raise RuntimeError(
                f"a backward step returned {len(parent_grads)} gradients for "
                f"{len(node._parents)} inputs."
            )
        for parent, pg in zip(node._parents, parent_grads):
            if pg is None or not parent._requires_grad:
                continue
            pg = np.asarray(pg, dtype=parent.data.dtype)
            if pg.shape != parent.shape:
                raise RuntimeError(
                    f"a backward step returned a gradient of shape {pg.shape} for an input "
                    f"of shape {parent.shape}."
                )
            key = id(parent)
            grads[key] = pg if key not in grads else np.asarray(grads[key] + pg)
        if not retain_graph:
            node._backward, node._parents = freed, ()   # free the graph as we go


def _topological_order(root) -> list:
    """Parents before children, by an explicit-stack depth-first search (no recursion)."""
    order: list = []
    visited: set[int] = set()
    stack: list[tuple[object, bool]] = [(root, False)]
    while stack:
        node, expanded = stack.pop()
        if expanded:
            order.append(node)
            continue
        if id(node) in visited:
            continue
        visited.add(id(node))
        stack.append((node, True))
        for parent in node._parents:
            if parent._requires_grad and id(parent) not in visited:
                stack.append((parent, False))
    return order
