#!/usr/bin/env bash
# Rebuilds the gallery pictures: filters on astronaut.png (NASA, public domain; see
# ../gallery.md) and a trained LeNet-5's filters, feature maps, curves and confusion matrix.
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

# A trained LeNet-5 (cnnlab train: digits, 10 epochs, seed 0) and what it learned.
cnnlab train --quiet --out /tmp/cnnlab-gallery-lenet > /dev/null
python - <<'PY'
import numpy as np
from PIL import Image
from cnnlab.data import load_dataset
_, test = load_dataset("digits")
index = int(np.flatnonzero(test.labels == 7)[0])
Image.fromarray((test.images[index, 0] * 255).round().astype(np.uint8)).save("seven.png")
PY
cnnlab viz filters /tmp/cnnlab-gallery-lenet/model.safetensors --out lenet-filters.png
cnnlab viz filters /tmp/cnnlab-gallery-lenet/model.safetensors --layer 3 --out lenet-filters-layer3.png
cnnlab viz features /tmp/cnnlab-gallery-lenet/model.safetensors seven.png --out lenet-features.png
cnnlab viz curves /tmp/cnnlab-gallery-lenet --out lenet-curves.png
cnnlab viz confusion /tmp/cnnlab-gallery-lenet/model.safetensors --out lenet-confusion.png
cnnlab explain model /tmp/cnnlab-gallery-lenet/model.safetensors seven.png --layer 0 --at 0,10,10 \
    > lenet-explain.txt
