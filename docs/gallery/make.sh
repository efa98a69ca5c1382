#!/usr/bin/env bash
# Rebuilds the gallery pictures from astronaut.png (NASA, public domain; see gallery.md).
set -euo pipefail
cd "$(dirname "$0")"
cnnlab filter astronaut.png -k box:size=5 -k gaussian:sigma=2 -k sharpen -k emboss \
    --grid blur-sharpen.png
cnnlab filter astronaut.png --gray -k sobel-x -k sobel-y -k sobel -k laplacian:neighbours=8 \
    --grid gradients.png
cnnlab filter astronaut.png --gray -k edge -k vertical-edge -k horizontal-edge -k high-pass \
    --grid lecture-edges.png
cnnlab filter astronaut.png --gray -k gaussian:sigma=1.5 -k sobel --out blur-then-sobel.png
cnnlab filter astronaut.png --gray -k gaussian:sigma=1.5 -k sobel --equalize --out blur-then-sobel-equalized.png
cnnlab filter astronaut.png --gray -k sobel-x --map clip --out sobel-x-clip.png
cnnlab filter astronaut.png --gray -k sobel-x --map abs --out sobel-x-abs.png
cnnlab filter astronaut.png --gray -k sobel-x --map normalize --out sobel-x-normalize.png
