"""The filter lab's request: an uploaded photo filtered as ``cnnlab filter`` filters it
(``cnnlab.tools.filters``), answered with both pictures and the kernel."""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import ApiError


def _flag(fields: dict[str, str], key: str) -> bool:
    value = fields.get(key, "false").strip().lower()
    if value not in ("true", "false", "1", "0", "on", "off", ""):
        raise ApiError(f"{key} must be true or false, received {value!r}.")
    return value in ("true", "1", "on")


def run(data: bytes, fields: dict[str, str]) -> dict[str, Any]:
    from ..data import read_pixels
    from ..tools import filters
    from .network import png_data_url
    from .uploads import as_file

    spec = fields.get("kernel", "").strip()
    if not spec:
        raise ApiError("expected a kernel: a name such as sobel or gaussian:sigma=2, or a "
                       "matrix such as \"0 -1 0; -1 5 -1; 0 -1 0\".")
    if len(spec) > 4000:
        raise ApiError(f"the kernel text is {len(spec):,} characters; at most 4,000.", 413)
    border = fields.get("border", "reflect")
    mapping = fields.get("map", "auto")
    if mapping not in ("auto", *filters.MAPPINGS):
        raise ApiError(f"map must be one of auto, {', '.join(filters.MAPPINGS)}, received "
                       f"{mapping!r}.")
    kernels = filters.kernels(spec)                      # a bad spec fails before any work
    if max(max(k.shape) for k in kernels) > 31:
        raise ApiError("kernels up to 31×31 are filtered here; received "
                       f"{'×'.join(map(str, kernels[0].shape))}.")
    with as_file(data) as path:
        try:
            original = read_pixels(path, channels=1 if _flag(fields, "gray") else None)
        except ValueError:
            raise ApiError("could not decode the image (a damaged or unsupported file).",
                           415) from None
    response = filters.apply(original, spec, border=border)
    mapping = filters.resolve_mapping(mapping, spec)
    result = filters.to_pixels(response, mapping)
    if _flag(fields, "equalize"):
        result = filters.equalize(result)
    return {"original": png_data_url(original), "result": png_data_url(result),
            "kernel": filters.format_kernel(spec),
            "kernels": [np.asarray(k, dtype=np.float64).round(6).tolist() for k in kernels],
            "mapping": mapping, "border": border,
            "shape": list(original.shape), "result_shape": list(result.shape)}
