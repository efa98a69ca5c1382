"""``cnnlab filter``: named or typed kernels applied to an image (the work:
``cnnlab.tools.filters``)."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from ._common import UsageError, add_image_options, check_writable, positive_int, save_image


def add_parser(commands) -> None:
    filt = commands.add_parser(
        "filter", help="filter an image with named kernels (blur, Sobel, sharpen, edges...)",
        description="Cross-correlate each channel of an image with a kernel, using the same "
        "convolution the networks train with. --kernel may repeat: --out applies the kernels "
        "one after the other (e.g. gaussian, then sobel); --grid shows the original beside "
        "each kernel's result.")
    filt.add_argument("image", metavar="IMAGE", nargs="?")
    filt.add_argument("--kernel", "-k", action="append", default=[], metavar="SPEC",
                      help="a name with optional parameters (gaussian:sigma=2,size=9) or a "
                           "matrix ('0 -1 0; -1 5 -1; 0 -1 0'); see --list")
    filt.add_argument("--border", choices=("zeros", "reflect", "replicate", "circular",
                                           "valid"), default="reflect",
                      help="how the image is extended past its edges (default reflect; valid: "
                           "no padding, a smaller output)")
    filt.add_argument("--stride", type=positive_int, default=1)
    filt.add_argument("--dilation", type=positive_int, default=1)
    filt.add_argument("--map", choices=("auto", "clip", "abs", "normalize"), default="auto",
                      help="signed responses to pixels: clip to 0..255, abs (edges of both "
                           "signs light up), normalize (min..max to 0..255); auto: abs when "
                           "the (last) kernel sums to 0, as edge detectors do, clip otherwise")
    filt.add_argument("--equalize", action="store_true",
                      help="equalise the histogram of each result (more contrast)")
    filt.add_argument("--gray", action="store_true", help="convert a colour image to grey first")
    filt.add_argument("--out", metavar="OUT.png", help="write the filtered image")
    filt.add_argument("--grid", metavar="OUT.png",
                      help="write the original and each kernel's result side by side, titled")
    filt.add_argument("--list", action="store_true", help="list the named kernels and exit")
    filt.add_argument("--show-kernel", action="store_true",
                      help="print the --kernel matrices (no image needed)")
    add_image_options(filt, invert=False)


def run(args: argparse.Namespace) -> int:
    from ..data import read_pixels
    from ..tools import filters

    if args.list:
        print(filters.describe())
        return 0
    if args.show_kernel:
        if not args.kernel:
            raise UsageError("--show-kernel needs at least one --kernel SPEC.")
        print("\n\n".join(f"{spec}:\n{filters.format_kernel(spec)}" for spec in args.kernel))
        return 0
    if not args.image:
        raise UsageError("expected an IMAGE to filter (or --list, or --show-kernel).")
    if not args.kernel:
        raise UsageError("expected at least one --kernel SPEC (see cnnlab filter --list).")
    if not (args.out or args.grid):
        raise UsageError("expected --out OUT.png, --grid OUT.png or both.")
    for target in filter(None, (args.out, args.grid)):
        check_writable(Path(target))
    for spec in args.kernel:
        filters.kernels(spec)                       # a bad spec fails before any work
    original = read_pixels(args.image, channels=1 if args.gray else None,
                           max_pixels=args.max_pixels)
    options = {"border": args.border, "stride": args.stride, "dilation": args.dilation}

    def pixels(response, specs):
        mapping = filters.resolve_mapping(args.map, specs[-1])  # the last kernel decides
        result = filters.to_pixels(response, mapping)
        return (filters.equalize(result) if args.equalize else result), mapping

    if args.out:
        response = original.astype(np.float64)
        for spec in args.kernel:
            response = filters.apply(response, spec, **options)
        result, mapping = pixels(response, args.kernel)
        save_image(result, Path(args.out))
        print(f"cnnlab filter: wrote {args.out} ({'×'.join(map(str, result.shape))}, "
              f"{' then '.join(args.kernel)}, border {args.border}, mapping {mapping})")
    if args.grid:
        panels = [("original", filters.to_pixels(original))]     # 16-bit and float: 8 bits
        for spec in args.kernel:
            result, mapping = pixels(filters.apply(original, spec, **options), [spec])
            panels.append((f"{spec} ({mapping})", result))
        sheet = filters.grid(panels)
        save_image(np.asarray(sheet), Path(args.grid))
        print(f"cnnlab filter: wrote {args.grid} (original and {len(args.kernel)} "
              f"result{'s' if len(args.kernel) > 1 else ''})")
    return 0
