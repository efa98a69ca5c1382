"""The cells of the companion notebooks, one list per notebook (``python notebooks/build.py``).

Edit here, not in the .ipynb files: build.py writes and executes them. The numbers are the
lectures' own worked examples; each notebook asserts its key results, so a wrong result fails
the test that runs it.
"""

from __future__ import annotations


def md(source: str) -> tuple[str, str, list[str]]:
    return ("md", source, [])


def code(source: str, *tags: str) -> tuple[str, str, list[str]]:
    return ("code", source, list(tags))


SETUP = code("""
import numpy as np
import cnnlab
from cnnlab import functional as F, nn, models
from cnnlab.tools import explain
""")

# ----------------------------------------------------------------------------------------- 01
CONVOLUTION = [
    md("""
# 1 · Convolution by hand

A convolution layer slides a small **kernel** over the image; at every position it multiplies
the pixels under the kernel by the kernel's weights and adds the products. This notebook redoes
the lecture's examples with cnnlab and checks every number: the 6×6 edge detector, the 5×5
example (where the handwritten notes slipped), true convolution against cross-correlation,
and convolution in one dimension.

`explain.conv2d(...)` writes out every sum the way the notes do; in a notebook it also draws the
input with the current window highlighted.
"""),
    SETUP,
    md("""
## The 6×6 edge example

A 6×6 image whose left half is bright (10) and right half dark (0), and the vertical-edge kernel
with rows `1 0 -1`. No padding, stride 1: the output is (6 − 3 + 1) × (6 − 3 + 1) = 4×4.
"""),
    code("""
image = np.array([[10, 10, 10, 0, 0, 0]] * 6, dtype=float)
kernel = np.array([[1, 0, -1]] * 3, dtype=float)

edges = F.conv2d(image[None, None], kernel[None, None]).data[0, 0]   # (N, C, H, W) in and out
print(edges)
assert edges.tolist() == [[0, 30, 30, 0]] * 4     # the edge is the bright band in the middle
"""),
    md("""
Where does the 30 come from? The window of `Z[0,1]` covers three columns `10 10 0`; the kernel
adds the left column and subtracts the right one: 3·10 − 3·0 = 30. `explain` shows every entry:
"""),
    code("""
explain.conv2d(image, kernel)
"""),
    md("""
## The 5×5 example, and a slip in the notes

The notes convolve this 5×5 image with the same vertical-edge kernel and write the answer
`21 0 -21; 38 0 -38; 0 0 0`. Giving that answer as `check=` compares it entry by entry:
"""),
    code("""
x5 = "1 20 20 20 1; 20 1 1 1 20; 20 1 1 1 20; 1 20 1 20 1; 1 1 20 1 1"
notes = "21 0 -21; 38 0 -38; 0 0 0"
result = explain.conv2d(x5, "1 0 -1; 1 0 -1; 1 0 -1", check=notes)
assert [w["index"] for w in result.wrong] == [[0, 0, 0], [0, 0, 2]]
assert result.numbers["output"][0] == [[19, 0, -19], [38, 0, -38], [0, 0, 0]]
result
"""),
    md("""
Two entries are wrong: the top-left window's columns add up to 1 + 20 + 20 = 41 and
20 + 1 + 1 = 22, and 41 − 22 = 19, not 21 (and −19 on the right). An arithmetic slip in the
handwritten notes; the other seven entries are right.

## True convolution against cross-correlation

Deep-learning frameworks (and the lecture) call *cross-correlation* "convolution": the kernel is
used as it is. The mathematical convolution first rotates the kernel by 180°. On the lecture's
3×3 example the two give 34 and 26:
"""),
    code("""
x = np.array([[1, 0, 0], [0, 2, 0], [1, 2, 0]], dtype=float)
k = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=float)

cross = F.conv2d(x[None, None], k[None, None]).data.item()
true = F.conv2d(x[None, None], k[None, None], flip_kernel=True).data.item()
print("cross-correlation:", cross, "  true convolution:", true)
assert (cross, true) == (34, 26)
assert true == (x * k[::-1, ::-1]).sum()        # the same as multiplying by the rotated kernel
"""),
    code("""
explain.conv2d(x, k, flip=True)
"""),
    md("""
## Convolution in one dimension

The same sliding sum along a sequence. The lecture's filter `(-1, 1, -1)` answers +1 to a
"lonely 1" (`0 1 0`) and −2 to a "lonely 0" (`1 0 1`); its first window `0 0 1` gives
0·(−1) + 0·1 + 1·(−1) = −1.
"""),
    code("""
signal = np.array([0, 0, 1, 0, 1, 0], dtype=float)
filt = np.array([-1, 1, -1], dtype=float)
z = F.conv1d(signal[None, None], filt[None, None]).data[0, 0]   # (N, C, L)
print(z)
assert z.tolist() == [-1, 1, -2, 1]
"""),
    md("""
## Exercises

1. Convolve the 6×6 image below with the kernel `2 2 2; 0 1 0; 2 0 1` (no padding, stride 1) by
   hand. Check your 4×4 answer with one line (replace the zeros by your numbers):

   ```python
   explain.conv2d("3 3 2 1 0 0; 0 1 3 1 3 1; 2 2 3 2 0 0; 2 2 2 0 0 0; 1 0 1 3 2 2; 3 2 0 3 0 1",
                  "2 2 2; 0 1 0; 2 0 1", check="0 0 0 0; 0 0 0 0; 0 0 0 0; 0 0 0 0")
   ```
2. The same 6×6 image with the *true* convolution: add `flip=True` to the line above.
3. What does the horizontal-edge kernel `1 1 1; 0 0 0; -1 -1 -1` give on the 6×6 edge image at
   the top? Check with `explain.conv2d(image, "1 1 1; 0 0 0; -1 -1 -1", check="...")`.
"""),
    code("""
# answer key for the first exercise (try it first): 16 of 16 right
answer = "24 21 13 9; 16 17 20 10; 19 19 14 12; 18 16 7 9"
check = explain.conv2d("3 3 2 1 0 0; 0 1 3 1 3 1; 2 2 3 2 0 0; 2 2 2 0 0 0; 1 0 1 3 2 2; 3 2 0 3 0 1",
                       "2 2 2; 0 1 0; 2 0 1", check=answer)
assert check.wrong == []
print(check.text.splitlines()[-1])
"""),
]

# ----------------------------------------------------------------------------------------- 02
SIZES = [
    md("""
# 2 · Output sizes: padding, stride, dilation, and two kinds of 'same'

One formula gives the output size along each axis (cnnlab uses it everywhere):

```
O = floor((n + p_begin + p_end - d·(k - 1) - 1) / s) + 1
```

for an input of `n` pixels, a kernel of `k`, stride `s`, dilation `d` and padding before/after.
With `d = 1` and `p` on both sides it is the lecture's `⌊(n + 2p − k) / s⌋ + 1`.
"""),
    SETUP,
    code("""
from cnnlab.ops.shapes import conv_output_size, same_padding

# no padding, stride 1: every 3×3 conv loses k - 1 = 2 pixels per axis
print({n: conv_output_size(n, 3) for n in (4, 5, 8, 128, 256)})
assert [conv_output_size(n, 3) for n in (4, 5, 8, 128, 256)] == [2, 3, 6, 126, 254]
"""),
    md("""
## Padding

Zero padding adds `p` pixels of 0 around the image. The lecture pads the 5×5 image by 1 to 7×7,
and the 2×2 image by 2 to 6×6:
"""),
    code("""
x = np.array([[2, 3], [9, 2]], dtype=float)
padded = F.pad(x, (2, 2, 2, 2)).data        # (left, right, top, bottom), as torch.nn.functional.pad
print(padded)
assert padded.shape == (6, 6) and padded[2:4, 2:4].tolist() == [[2, 3], [9, 2]]
"""),
    md("""
To keep the size ("same" padding) with stride 1: n + 2p − k + 1 = n, so **p = (k − 1) / 2**:
1 for a 3×3 kernel, 2 for 5×5, 3 for 7×7. The 6×6 image is padded to 8×8 and a 3×3 conv gives
6×6 again; the lecture's sharpening of a 5×5 patch with p = 1 keeps 5×5 (the notes' 320 in the
corner, 210 on the left edge):
"""),
    code("""
assert {k: (k - 1) // 2 for k in (3, 5, 7)} == {3: 1, 5: 2, 7: 3}
assert conv_output_size(6, 3, p=1) == 6

patch = "105 102 100 97 96; 103 99 103 101 102; 101 98 104 102 100; 99 101 106 104 99; 104 104 104 100 98"
sharpen = "0 -1 0; -1 5 -1; 0 -1 0"
same = explain.conv2d(patch, sharpen, padding=1, at=(0, 0))
assert same.numbers["output"][0][0][:2] == [320, 206] and same.numbers["output"][0][1][0] == 210
same
"""),
    md("""
## Stride

With stride 2 the window jumps two pixels: a 5×5 input and a 3×3 kernel give
⌊(5 − 3) / 2⌋ + 1 = 2 per axis. The floor matters: ⌊(6 − 3) / 2⌋ + 1 = 2 as well (the last
column is never the centre of a window). The lecture's chain of three unpadded convolutions,
64×64×3 → 62×62×8 → 29×29×16 → 12×12×32:
"""),
    code("""
assert conv_output_size(5, 3, s=2) == 2 and conv_output_size(6, 3, s=2) == 2
sizes = [64]
for k, s in ((3, 1), (5, 2), (7, 2)):
    sizes.append(conv_output_size(sizes[-1], k, s=s))
print(sizes)
assert sizes == [64, 62, 29, 12]
"""),
    md("""
## Dilation

A dilated kernel spreads its `k` taps `d` pixels apart: it spans d·(k − 1) + 1 pixels, so a
3×3 kernel with d = 2 covers 5×5 with 9 weights.
"""),
    code("""
assert conv_output_size(7, 3, d=2) == 3                 # spans 5: 7 - 5 + 1
dilated = explain.conv2d(np.arange(49.0).reshape(7, 7), "1 0 -1; 1 0 -1; 1 0 -1", dilation=2)
assert dilated.numbers["output"][0][0][0] == 3 * (0 - 4)   # rows 0, 2, 4: column 0 - column 4
dilated
"""),
    md("""
## TensorFlow's 'same' against PyTorch's 'same'

With stride > 1, "same" means `ceil(n / s)` outputs (TensorFlow's rule; cnnlab follows it). The
total padding is `max((⌈n/s⌉ − 1)·s + d·(k−1) + 1 − n, 0)`, and when it is odd TensorFlow puts
the extra pixel **at the end**. PyTorch's `padding='same'` refuses stride > 1 altogether, and its
usual `padding=(k−1)//2` is symmetric, so a model moved between the two can shift by a pixel:
"""),
    code("""
table = explain.padding(6, 3, stride=2)
schemes = {row["scheme"]: (row["before"], row["after"], row["output"]) for row in table.numbers["schemes"]}
assert same_padding(6, 3, 2) == (0, 1)                           # the odd pixel at the end
assert schemes["TensorFlow 'SAME'"] == (0, 1, 3) and schemes["PyTorch p = d·(k-1)//2"] == (1, 1, 3)
table
"""),
    code("""
y = F.conv2d(np.zeros((1, 1, 7, 7)), np.ones((1, 1, 3, 3)), stride=2, padding="same")
assert y.shape == (1, 1, 4, 4)            # ceil(7 / 2) = 4 for any kernel
"""),
    md("""
## Exercises

1. A 256×256×3 image, 7×7 kernels, stride 1: what padding keeps 256×256? Check:
   `explain.padding(256, 7)`.
2. A 227×227 input, 11×11 kernel, stride 4, no padding (AlexNet's first layer): the output size?
   Check: `conv_output_size(227, 11, s=4)`.
3. The 7×7 input, 3×3 kernel, stride 2 with TensorFlow's 'same': how many zeros go on each side?
   Check: `explain.padding(7, 3, stride=2)`.
"""),
    code("""
# answer key (try the exercises first)
assert same_padding(256, 7) == (3, 3) and conv_output_size(227, 11, s=4) == 55
"""),
]

# ----------------------------------------------------------------------------------------- 03
VOLUMES = [
    md("""
# 3 · Volumes: channels, filters, 1×1 convolutions, parameter counts

An RGB image is a *volume* H×W×3. A filter has as many channels as its input: a 3×3 filter on
an RGB image is 3×3×3 = 27 weights (plus one bias), and it still produces **one** number per
position, the sum over all three channels. Several filters give several output channels.
"""),
    SETUP,
    code("""
from cnnlab.tools import summary, receptive_field

rng = np.random.default_rng(0)
x = rng.integers(0, 5, (1, 3, 6, 6)).astype(float)         # a 6×6×3 volume (N, C, H, W)
one = nn.Conv2d(3, 1, 3)
four = nn.Conv2d(3, 4, 3)
print(one(x).shape, four(x).shape)
assert one(x).shape == (1, 1, 4, 4) and four(x).shape == (1, 4, 4, 4)
assert one.weight.shape == (1, 3, 3, 3) and one.weight.size == 27
assert sum(p.size for p in nn.Conv2d(3, 16, 3).parameters()) == 3 * 3 * 3 * 16 + 16 == 448
"""),
    md("""
## A 6×6×3 volume by hand (the lecture's exercise a)

The exercise's input in channel-first layout (one 6×6 matrix per channel), a 3×3×3 filter and
bias 7. The output is 4×4×1; the exercise asks for three entries: row 4/column 4, row 2/column 3
and row 4/column 2 (counting from 1).
"""),
    code("""
X = [[[1, 2, 0, 2, 1, 2], [3, 2, 6, 0, 3, 0], [0, 0, 0, 1, 0, 1], [1, 3, 4, 2, 2, 0], [0, 2, 2, 0, 3, 1], [5, 3, 6, 1, 2, 0]],
     [[1, 2, 4, 3, 0, 1], [0, 4, 3, 2, 1, 5], [2, 0, 5, 2, 0, 2], [7, 2, 0, 1, 3, 3], [2, 0, 4, 0, 2, 0], [1, 6, 3, 0, 5, 3]],
     [[1, 0, 2, 3, 0, 1], [0, 4, 5, 2, 3, 2], [2, 0, 6, 0, 0, 2], [0, 2, 4, 1, 2, 4], [2, 6, 2, 0, 2, 3], [2, 0, 3, 0, 0, 0]]]
K = [[[0, 0, 1], [3, 4, 0], [0, 0, -1]],
     [[-1, -2, 0], [0, 2, 0], [2, -1, 0]],
     [[0, -2, 0], [-1, 1, 0], [0, -1, 0]]]
volume = explain.conv2d(X, K, bias=7)
Z = np.array(volume.numbers["output"][0])
print(Z)
assert (Z[3, 3], Z[1, 2], Z[3, 1]) == (9, -3, 22)
"""),
    code("""
volume          # the worked sum of each channel, then their total plus the bias
"""),
    md("""
## 1×1 convolutions

A 1×1 filter looks at one pixel, but at **all** its channels: it is a fully connected layer
applied at every position, mixing channels without touching space. It changes the number of
channels cheaply: 64 → 16 channels costs 64·16 + 16 = 1,040 weights at any image size.
"""),
    code("""
mix = nn.Conv2d(3, 2, 1)
mix.weight.data[...] = np.array([[1, 1, 1], [1, -1, 0]], dtype=np.float32).reshape(2, 3, 1, 1)
mix.bias.data[...] = 0
y = mix(x).data[0]
assert np.allclose(y[0], x[0].sum(axis=0)) and np.allclose(y[1], x[0, 0] - x[0, 1])
assert sum(p.size for p in nn.Conv2d(64, 16, 1).parameters()) == 1040
"""),
    md("""
## Why convolutions: parameter counts

The lecture compares a 5×5×3 → 8 convolution on a 32×32×3 image (608 parameters) with a fully
connected layer producing the same 28×28×8 outputs: 3,072 inputs × 6,272 outputs + 6,272 biases
= 19,273,856 parameters. (The slide has 20,528,256, from a typo 3,272 for 3,072; its
conclusion, 608 ≪ 19 million, stands.) Sharing one 5×5 filter over a 28×28 image is 26
parameters; a separate 5×5 filter at each of the 24×24 positions would be 14,976.
"""),
    code("""
conv = nn.Conv2d(3, 8, 5)
fc = nn.Linear(32 * 32 * 3, 28 * 28 * 8)
conv_params = sum(p.size for p in conv.parameters())
fc_params = sum(p.size for p in fc.parameters())
print(f"conv {conv_params:,}   fully connected {fc_params:,}")
assert (conv_params, fc_params) == (608, 19_273_856)
assert 24 * 24 * (25 + 1) == 14_976 and 28 * 28 == 784 and 512 * 512 * 3 == 786_432
del fc                                                   # 77 MB of weights
"""),
    md("""
## The LeNet table

The lecture's LeNet-style network on a 32×32×3 image: two 5×5 convolutions (8 and 16 filters),
each followed by ReLU and 2×2 max pooling, then fully connected layers 120 → 84 → 10.
`summary` measures every row of the lecture's table by running the model once:
"""),
    code("""
net = models.lenet5(in_channels=3, input_size=32, channels=(8, 16))
table = summary(net, (3, 32, 32))
params = [row.params for row in table.rows if row.params]
assert params == [608, 3216, 48120, 10164, 850] and table.total_params == 62_958
assert [row.activation_size for row in table.rows if row.layer.startswith(("Conv", "MaxPool"))] == [6272, 1568, 1600, 400]
table
"""),
    md("""
## Exercises

1. The other entries of the 6×6×3 exercise: compute `Z[0,0]` by hand (27 products and the bias),
   then check all 16 with `explain.conv2d(X, K, bias=7, check="35 20 19 24; ...")` (your 16
   numbers, rows split by `;`).
2. Exercise c of the lecture: the 3×3×3 conv with bias, then ReLU, 2×2 pooling to 3×3, flatten,
   and a fully connected layer of 32 neurons. How many parameters in each layer? Check:
   `summary(nn.Sequential(nn.Conv2d(3, 1, 3), nn.ReLU(), nn.MaxPool2d(2, 1), nn.Flatten(), nn.Linear(9, 32)), (3, 6, 6))`.
3. How many parameters has a 1×1 convolution from 256 to 64 channels? Check:
   `sum(p.size for p in nn.Conv2d(256, 64, 1).parameters())`.
"""),
    code("""
# answer key (try the exercises first)
small = summary(nn.Sequential(nn.Conv2d(3, 1, 3), nn.ReLU(), nn.MaxPool2d(2, 1), nn.Flatten(),
                              nn.Linear(9, 32)), (3, 6, 6))
assert [r.params for r in small.rows] == [28, 0, 0, 0, 320] and small.total_params == 348
"""),
]

# ----------------------------------------------------------------------------------------- 04
LAYERS = [
    md("""
# 4 · Pooling, ReLU, flatten, fully connected, softmax and cross-entropy

The layers after the convolutions: **ReLU** zeroes negative values, **max pooling** keeps the
largest value of each window, **flatten** lays the volume out as one vector, **fully connected**
layers mix everything, and **softmax** turns the final scores into probabilities, which
**cross-entropy** compares with the true class.
"""),
    SETUP,
    md("""
## Max pooling

The lecture's 4×4 map, 2×2 windows, stride 2: 16 values become 4. With stride 1 the windows
overlap and the map only shrinks to 3×3.
"""),
    code("""
m = np.array([[0, 0, 14, 82], [149, 32, 0, 0], [28, 53, 64, 44], [39, 120, 133, 99]], dtype=float)
p2 = F.max_pool2d(m[None, None], 2).data[0, 0]
p1 = F.max_pool2d(m[None, None], 2, stride=1).data[0, 0]
print(p2, p1, sep="\\n\\n")
assert p2.tolist() == [[149, 82], [120, 133]]
assert p1.tolist() == [[149, 32, 82], [149, 64, 64], [120, 133, 133]]
"""),
    code("""
explain.pool(m, 2)
"""),
    md("""
A 3×3 window with stride 2 and padding 1 (the lecture's padded 5×5 example); padding with −∞
means a padded cell is never the maximum:
"""),
    code("""
q = "3 3 2 1 0; 0 0 1 3 1; 3 1 2 2 3; 2 0 0 2 2; 2 0 0 0 1"
padded_pool = explain.pool(q, 3, stride=2, padding=1)
assert padded_pool.numbers["output"][0] == [[3, 3, 3], [3, 3, 3], [2, 2, 2]]
padded_pool
"""),
    md("""
## Convolution, then ReLU: the "lonely pixel" detector

The lecture's kernel `-1 -1 -1; -1 1 -1; -1 -1 -1` with padding 1 answers positively only where
a 1 has no neighbours; ReLU keeps just that answer.
"""),
    code("""
img = "1 0 1 0 0; 1 0 1 0 1; 1 1 1 0 0; 1 0 1 0 1; 1 0 1 0 1"
z = explain.conv2d(img, "-1 -1 -1; -1 1 -1; -1 -1 -1", padding=1).numbers["output"][0]
assert z[1] == [-2, -7, -2, -4, 1]
rectified = explain.relu(z)
assert rectified.numbers["output"][0] == [[0] * 5, [0, 0, 0, 0, 1], [0] * 5, [0] * 5, [0] * 5]
rectified
"""),
    md("""
## Flatten and fully connected layers

Flatten reads the volume in row-major (C) order. A fully connected layer from `n` inputs to `m`
outputs has n·m weights and m biases: 10 → 10 is 110 parameters; a 1,000-unit layer on a
512×512×3 image would have 786,432,000 weights.
"""),
    code("""
v = np.array([[[1, 2, 3], [4, 5, 6]], [[7, 8, 9], [10, 11, 12]]], dtype=float)
flat = nn.Flatten()(v[None]).data[0]
assert flat.tolist() == list(range(1, 13))
assert sum(p.size for p in nn.Linear(10, 10).parameters()) == 110
assert 512 * 512 * 3 * 1000 == 786_432_000
"""),
    md("""
## Softmax and cross-entropy

Scores `5 6 1 2`: `p_i = exp(z_i) / Σ_j exp(z_j)`. The loss for the true class `t` is
`−log p_t`.
"""),
    code("""
soft = explain.softmax("5 6 1 2", target=1)
p = np.array(soft.numbers["probabilities"])
print(np.round(p, 4))
assert np.round(p, 4).tolist() == [0.2641, 0.7179, 0.0048, 0.0131]
assert abs(soft.numbers["loss"] - (-np.log(p[1]))) < 1e-12
assert round(float(F.cross_entropy(np.array([[5.0, 6, 1, 2]]), np.array([1])).data), 4) == 0.3314
soft
"""),
    md("""
## Exercises

The lecture's exercise b: ReLU, then 2×2 max pooling with stride 1, of this map:

```
35  20  20   3
 1  -1  21  -3
21   7  15  22
-2  22  22  29
```

1. The rectified map. Check: `explain.relu("35 20 20 3; 1 -1 21 -3; 21 7 15 22; -2 22 22 29", check="...")`.
2. The pooled 3×3 map. Check: `explain.pool("<your rectified map>", 2, stride=1, check="...")`.
3. The softmax of `2 1 0.1` and the loss for class 0. Check: `explain.softmax("2 1 0.1", target=0)`.
"""),
    code("""
# answer key (try the exercises first)
relu_b = explain.relu("35 20 20 3; 1 -1 21 -3; 21 7 15 22; -2 22 22 29",
                      check="35 20 20 3; 1 0 21 0; 21 7 15 22; 0 22 22 29")
pool_b = explain.pool("35 20 20 3; 1 0 21 0; 21 7 15 22; 0 22 22 29", 2, stride=1,
                      check="35 21 21; 21 21 22; 22 22 29")
assert relu_b.wrong == [] and pool_b.wrong == []
"""),
]

# ----------------------------------------------------------------------------------------- 05
BACKPROP = [
    md("""
# 5 · Backpropagation through a convolution, by hand

For `Z = X ⋆ K + b` (cross-correlation, stride 1) and the gradient `dL/dZ` coming back from the
layers above, the lecture derives three identities:

- **dL/dK = X ⋆ dL/dZ**: the input cross-correlated with the output gradient;
- **dL/db = Σ dL/dZ**: the bias touched every output once;
- **dL/dX = pad(dL/dZ, k − 1) ⋆ rot180(K)**: the "full" convolution of the output gradient with
  the kernel rotated by 180°.

This notebook works them out on a 3×3 input and a 2×2 kernel, checks them against cnnlab's
autograd, and checks autograd against finite differences (gradcheck).
"""),
    SETUP,
    code("""
X = np.array([[1, 2, 0], [3, -1, 2], [0, 1, 4]], dtype=float)
K = np.array([[1, -2], [3, 0]], dtype=float)
b = np.array([1.0])
dZ = np.array([[1, -1], [2, 3]], dtype=float)          # dL/dZ, given

x, k, bias = (cnnlab.tensor(v, requires_grad=True) for v in (X[None, None], K[None, None], b))
Z = F.conv2d(x, k, bias)
Z.backward(dZ[None, None])
print("Z =", Z.data[0, 0].tolist())
print("dL/dK =", k.grad[0, 0].tolist(), " dL/db =", bias.grad.tolist())
print("dL/dX =", x.grad[0, 0].tolist())
assert Z.data[0, 0].tolist() == [[7, 0], [6, -1]]
assert k.grad[0, 0].tolist() == [[2, 6], [7, 11]] and bias.grad.tolist() == [5]
assert x.grad[0, 0].tolist() == [[1, -3, 2], [5, -4, -6], [6, 9, 0]]
"""),
    md("""
## The three identities, computed directly

Each identity is itself a convolution, so the forward function computes it:
"""),
    code("""
dK = F.conv2d(X[None, None], dZ[None, None]).data[0, 0]                  # X ⋆ dZ
db = dZ.sum()
rot180 = K[::-1, ::-1]
dX = F.conv2d(F.pad(dZ, (1, 1, 1, 1)).data[None, None], rot180[None, None]).data[0, 0]
print(rot180.tolist())
assert rot180.tolist() == [[0, 3], [-2, 1]]
assert (dK == k.grad[0, 0]).all() and db == 5 and (dX == x.grad[0, 0]).all()
"""),
    md("""
`explain.conv2d(..., grad=dL/dZ)` writes each of these sums out, entry by entry:
"""),
    code("""
explain.conv2d(X, K, bias=1, grad=dZ)
"""),
    md("""
## Checked by finite differences

`gradcheck` compares autograd's gradients with `(f(x + ε) − f(x − ε)) / 2ε` for every entry of
every input. Here also with stride 2, padding 1 and dilation, where the identities need the
output gradient dilated by the stride:
"""),
    code("""
rng = np.random.default_rng(0)
plain = cnnlab.gradcheck(lambda x, k, b: F.conv2d(x, k, b), [X[None, None], K[None, None], b])
strided = cnnlab.gradcheck(lambda x, k: F.conv2d(x, k, stride=2, padding=1, dilation=2),
                           [rng.standard_normal((2, 3, 7, 7)), rng.standard_normal((4, 3, 3, 3))])
print(plain, strided, sep="\\n")
assert plain and strided
"""),
    md("""
## The shapes in one dimension

The lecture's 1-D chain: a 5×1 signal, a filter of 3 with padding 1 (so Z₁ is 5×1), then a
layer that reduces it to one number. dL/dW₁ = (dZ₁/dW₁)ᵀ · (dA₁/dZ₁) · dL/dA₁ multiplies
3×5 · 5×5 · 5×1 and is 3×1: one gradient per filter weight.
"""),
    code("""
signal = cnnlab.tensor(np.array([[[0.0, 1, 2, 1, 0]]]))                    # (N, C, L) = 1×1×5
w1 = cnnlab.tensor(np.array([[[1.0, -1, 0.5]]]), requires_grad=True)
a1 = F.relu(F.conv1d(signal, w1, padding=1))
loss = (a1 * a1).sum()
loss.backward()
assert a1.shape == (1, 1, 5) and w1.grad.shape == (1, 1, 3)
assert cnnlab.gradcheck(lambda w: (F.relu(F.conv1d(signal.data, w, padding=1)) ** 2).sum(), [w1.data])
"""),
    md("""
## Exercises

1. Keep X, K and b, and take dL/dZ = `0 1; 1 0`. Compute dL/dK, dL/db and dL/dX by hand with the
   three identities. Check with one line:
   `explain.conv2d("1 2 0; 3 -1 2; 0 1 4", "1 -2; 3 0", bias=1, grad="0 1; 1 0")`.
2. Why is dL/db the sum of dL/dZ? Write Z's four entries as sums and differentiate by b.
3. With stride 2 the output gradient is spread out (dilated) before the "full" convolution.
   Try a 4×4 input with a 2×2 kernel and stride 2, and check your dL/dX with
   `cnnlab.gradcheck(lambda x: F.conv2d(x, K2, stride=2), [X4])`.
"""),
    code("""
# answer key (try the exercises first)
answer = explain.conv2d("1 2 0; 3 -1 2; 0 1 4", "1 -2; 3 0", bias=1, grad="0 1; 1 0").numbers
assert answer["grad_kernel"][0] == [[5, -1], [-1, 3]] and answer["grad_bias"] == 2
"""),
]

# ----------------------------------------------------------------------------------------- 06
TRAINING = [
    md("""
# 6 · Training LeNet-5 on digits

LeNet-5 as in the lecture (two 5×5 convolutions with pooling, then 120 → 84 → 10), trained with
SGD on handwritten digits: the 10,000 MNIST test images shipped inside cnnlab (8,000 for
training, 2,000 held out), so this runs with no network. To keep the notebook quick it trains on
2,000 images for 3 epochs; `cnnlab train` trains on all of them.

Results vary a little between machines (the order of floating-point sums), so the cells below
check ranges, not exact values.
"""),
    code("""
import numpy as np
import cnnlab
from cnnlab import models, optim
from cnnlab.data import load_dataset
from cnnlab.tools import explain, summary, viz
from cnnlab.train import evaluate, fit

train, test = load_dataset("digits")
assert (len(train), len(test), train.shape) == (8000, 2000, (1, 28, 28))
train
"""),
    code("""
cnnlab.manual_seed(0)
model = models.lenet5()
table = summary(model, (1, 28, 28))
assert table.total_params == 61_706
table
"""),
    md("""
## Training

The progress line updates in place while an epoch runs and stays as one line per epoch.
"""),
    code("""
optimizer = optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
history = fit(model, train.subset(range(2000)), epochs=3, optimizer=optimizer, batch_size=32,
              val_data=test.subset(range(500)), seed=0)
""", "nondeterministic"),
    code("""
history
""", "nondeterministic"),
    code("""
assert len(history) == 3 and history["loss"][-1] < history["loss"][0]
assert history["val_accuracy"][-1] > 0.8
"""),
    md("""
## Evaluation: the confusion matrix

Rows are the true digits, columns the predictions; the diagonal counts the right answers.
"""),
    code("""
result = evaluate(model, test)
print(f"test accuracy {result['accuracy']:.3f} on {result['count']:,} images")
assert result["accuracy"] > 0.8 and result["confusion_matrix"].sum() == 2000
viz.confusion_matrix(result["confusion_matrix"], test.classes)
""", "nondeterministic"),
    md("""
## What the first layer learned

The six 5×5 kernels of the first convolution (blue negative, red positive), and the feature maps
of one test image through every layer:
"""),
    code("""
viz.filter_bank(model)
""", "nondeterministic"),
    code("""
image, label = test[0]
viz.feature_maps(model, image, title=f"a test image of a {label}")
""", "nondeterministic"),
    md("""
One number of the second convolution's output, worked out from the first layer's feature maps
and the learned kernel (every input channel's window, its products and sum):
"""),
    code("""
worked = explain.model(model, image, layer="3", at=(0, 4, 4))
assert abs(worked.numbers["value"] - (sum(worked.numbers["channel_sums"]) + worked.numbers["bias"])) < 1e-3
worked
""", "nondeterministic"),
    md("""
## Exercises

1. Train for 6 epochs instead of 3, or on all 8,000 images: how much does the test accuracy
   change? Check: `evaluate(model, test)["accuracy"]`.
2. Which two digits does the model confuse most? Check: the largest off-diagonal entry of
   `result["confusion_matrix"]`.
3. A learning rate of 0.5 instead of 0.05: what happens to the loss? Check: `history["loss"]`
   (cnnlab stops with `TrainingDiverged` if it becomes NaN).
"""),
    code("""
off_diagonal = result["confusion_matrix"] - np.diag(np.diag(result["confusion_matrix"]))
assert off_diagonal.max() < 100                        # no digit is mostly mistaken for another
"""),
]

# ----------------------------------------------------------------------------------------- 07
FILTERS = [
    md("""
# 7 · Image filters and histogram equalisation

Before networks learned their kernels, image processing chose them by hand: blurring, sharpening,
edges. `cnnlab.tools.filters` applies them with the same convolution the networks use (each
colour channel on its own). First the lecture's small examples, then a photograph.
"""),
    code("""
import numpy as np
from IPython.display import display
from PIL import Image
from cnnlab.tools import explain, filters

patch = np.array([[105, 102, 100, 97, 96], [103, 99, 103, 101, 102], [101, 98, 104, 102, 100],
                  [99, 101, 106, 104, 99], [104, 104, 104, 100, 98]], dtype=float)
print(filters.format_kernel("sharpen"))
valid = filters.apply(patch, "sharpen", border="valid")
same = filters.apply(patch, "sharpen", border="zeros")
print(valid)
assert valid.tolist() == [[89, 111, 101], [85, 111, 101], [98, 117, 113]]
assert same[0, 0] == 320 and same[1, 0] == 210
"""),
    md("""
## Edges

The lecture's 8×8 images: a vertical edge (10 | 100) found by `-1 0 1` rows, a horizontal one by
the transposed kernel. The response, 3 × 90 = 270, sits where the kernel straddles the edge.
"""),
    code("""
vertical = np.array([[10] * 4 + [100] * 4] * 8, dtype=float)
horizontal = vertical.T.copy()
v = filters.apply(vertical, "-1 0 1; -1 0 1; -1 0 1", border="valid")
h = filters.apply(horizontal, "-1 -1 -1; 0 0 0; 1 1 1", border="valid")
assert v.tolist() == [[0, 0, 270, 270, 0, 0]] * 6
assert h.tolist() == [[0] * 6] * 2 + [[270] * 6] * 2 + [[0] * 6] * 2
explain.conv2d(vertical, "-1 0 1; -1 0 1; -1 0 1", check=v)
"""),
    md("""
## On a photograph

The astronaut picture (public domain, NASA), in grey. Derivative kernels give signed responses;
`to_pixels(..., "abs")` shows both signs of edges as bright.
"""),
    code("""
photo = np.asarray(Image.open("../docs/gallery/astronaut.png").convert("L"), dtype=float)
panels = [("original", filters.to_pixels(photo)),
          ("gaussian sigma=2", filters.to_pixels(filters.apply(photo, "gaussian:sigma=2", border="reflect"))),
          ("sharpen", filters.to_pixels(filters.apply(photo, "sharpen", border="reflect"))),
          ("sobel magnitude, stretched", filters.to_pixels(filters.apply(photo, "sobel", border="reflect"), "normalize")),
          ("vertical edges |·|", filters.to_pixels(filters.apply(photo, "vertical-edge", border="reflect"), "abs")),
          ("laplacian |·|", filters.to_pixels(filters.apply(photo, "laplacian", border="reflect"), "abs"))]
assert photo.shape == (256, 256) and all(p.shape == (256, 256) for _, p in panels)
display(filters.grid(panels, columns=3), include=["image/jpeg"])   # a photo: JPEG is smaller
"""),
    md("""
## Histogram equalisation

A dull, low-contrast copy uses only a narrow band of grey levels. Equalisation maps each level
`v` to `round(255 · (cdf(v) − cdf_min) / (n − cdf_min))`, spreading the used levels over 0…255.
"""),
    code("""
import matplotlib.pyplot as plt

dull = filters.to_pixels(photo * 0.3 + 90)
spread = filters.equalize(dull)
print("levels", dull.min(), "...", dull.max(), "->", spread.min(), "...", spread.max())
assert (dull.min(), dull.max()) == (90, 166) and (spread.min(), spread.max()) == (0, 255)
order = np.argsort(dull.ravel(), kind="stable")           # darker stays darker
assert (np.diff(spread.ravel()[order].astype(int)) >= 0).all()

display(filters.grid([("low contrast", dull), ("equalised", spread)]), include=["image/jpeg"])
"""),
    code("""
fig, axes = plt.subplots(1, 2, figsize=(8, 2), sharey=True)
for ax, (title, pixels) in zip(axes, (("low contrast", dull), ("equalised", spread))):
    ax.hist(pixels.ravel(), bins=64, range=(0, 255), color="gray")
    ax.set_title(f"histogram, {title}", fontsize=10)
    ax.set_yticks([])
plt.show()
"""),
    md("""
## Exercises

1. The 3×3 box blur (`1/9` everywhere) of the lecture's 5×5 patch, no padding: compute the
   centre value by hand. Check:
   `explain.conv2d(patch, "1/9 1/9 1/9; 1/9 1/9 1/9; 1/9 1/9 1/9", check="... ; ... ; ...")`
   (your 3×3 answer, two decimals are enough).
2. Which kernel finds horizontal edges in the photograph? Try `filters.apply(photo, "sobel-y")`.
3. Equalise a tiny image by hand: `np.array([[52, 55], [61, 59]], dtype=np.uint8)`. Check:
   `filters.equalize(np.array([[52, 55], [61, 59]], dtype=np.uint8))`.
"""),
    code("""
# answer key (try the exercises first)
blur = explain.conv2d(patch, "1/9 1/9 1/9; 1/9 1/9 1/9; 1/9 1/9 1/9",
                      check="101.67 100.67 100.56; 101.56 102.00 102.33; 102.33 102.56 101.89")
assert blur.wrong == []
assert filters.equalize(np.array([[52, 55], [61, 59]], dtype=np.uint8)).tolist() == [[0, 85], [255, 170]]
"""),
]

# ----------------------------------------------------------------------------------------- 08
FIELDS = [
    md("""
# 8 · Receptive fields, and why two 3×3 beat one 5×5

The **receptive field** of a feature is the patch of input pixels it depends on. Per axis, a
layer with kernel `k`, stride `s` and dilation `d` turns the field `r` and the jump `j` (input
pixels between neighbouring features) of its input into

```
r_out = r_in + d·(k − 1)·j_in        j_out = j_in · s
```

starting from the image: r = 1, j = 1.
"""),
    code("""
import numpy as np
import cnnlab
from cnnlab import functional as F, models, nn
from cnnlab.tools import receptive_field, summary

two = nn.Sequential(nn.Conv2d(1, 1, 3, bias=False), nn.ReLU(), nn.Conv2d(1, 1, 3, bias=False))
one = nn.Conv2d(1, 1, 5, bias=False)
fields = receptive_field(two, (1, 9, 9))
assert [row.size for row in fields] == [(3, 3), (3, 3), (5, 5)]
assert receptive_field(one, (1, 9, 9))[-1].size == (5, 5)
fields
"""),
    md("""
## The same field, fewer weights, one more non-linearity

Both see 5×5 pixels. Per pair of input and output channels, two 3×3 layers have 2·9 = 18
weights, one 5×5 layer 25: 28% fewer. And the ReLU between the two makes the stack a more
expressive function than one linear 5×5 filter.
"""),
    code("""
weights_two = sum(p.size for p in two.parameters())
weights_one = sum(p.size for p in one.parameters())
print(weights_two, weights_one, f"{weights_two / weights_one:.2f}")
assert (weights_two, weights_one) == (18, 25)
# with C channels in and out: 2·9·C² against 25·C²
C = 64
assert sum(p.size for p in nn.Conv2d(C, C, 3, bias=False).parameters()) * 2 == 18 * C * C
"""),
    md("""
## Seeing it: which pixels does one output depend on?

The gradient of one output with respect to the input is non-zero exactly on its receptive
field. With all weights 1 the count of paths through the network shows too: the centre pixel
reaches the output through 9 paths, a corner through 1.
"""),
    code("""
for conv in (two[0], two[2]):
    conv.weight.data[...] = 1.0
x = cnnlab.tensor(np.ones((1, 1, 9, 9)), requires_grad=True)
y = two(x)
grad = np.zeros(y.shape)
grad[0, 0, 2, 2] = 1.0                                     # one output feature
y.backward(grad)
paths = x.grad[0, 0].astype(int)
print(paths)
rows, cols = np.nonzero(paths)
assert (rows.max() - rows.min() + 1, cols.max() - cols.min() + 1) == (5, 5)
assert paths[4, 4] == 9 and paths[2, 2] == 1
"""),
    md("""
## Stride and pooling make fields grow fast

Each stride multiplies the jump, so later layers add more pixels per kernel tap. In LeNet-5 the
second convolution already sees 14×14 of the 28×28 digit and the last pooling 16×16:
"""),
    code("""
lenet = receptive_field(models.lenet5(), (1, 28, 28))
sizes = {row.name: (row.size, row.jump) for row in lenet if row.size}
assert sizes["3"] == ((14, 14), (2, 2)) and sizes["5"] == ((16, 16), (4, 4))
lenet
"""),
    md("""
A dilated 3×3 kernel (d = 2) spans 5×5 with 9 weights; stacking dilations 1, 2, 4 grows the
field exponentially (3, 7, 15) at a constant cost per layer:
"""),
    code("""
dilated = nn.Sequential(nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3, dilation=2), nn.Conv2d(1, 1, 3, dilation=4))
assert [row.size for row in receptive_field(dilated, (1, 32, 32))] == [(3, 3), (7, 7), (15, 15)]
"""),
    md("""
## Exercises

1. Three stacked 3×3 convolutions: what receptive field, and how many weights per channel pair,
   against one 7×7? Check:
   `receptive_field(nn.Sequential(*[nn.Conv2d(1, 1, 3) for _ in range(3)]), (1, 16, 16))[-1].size`.
2. VGG's block: two 3×3 convolutions, a 2×2 max pool, two more 3×3 convolutions. The field of the
   last one? Check:
   `receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3), nn.MaxPool2d(2), nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3)), (1, 32, 32))`.
3. The first layer of AlexNet (11×11, stride 4) followed by a 3×3 max pool with stride 2: the
   field and jump after the pool? Check with `receptive_field` on those two layers.
"""),
    code("""
# answer key (try the exercises first)
three = receptive_field(nn.Sequential(*[nn.Conv2d(1, 1, 3) for _ in range(3)]), (1, 16, 16))
vgg = receptive_field(nn.Sequential(nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3), nn.MaxPool2d(2),
                                    nn.Conv2d(1, 1, 3), nn.Conv2d(1, 1, 3)), (1, 32, 32))
alex = receptive_field(nn.Sequential(nn.Conv2d(3, 1, 11, stride=4), nn.MaxPool2d(3, 2)), (3, 227, 227))
assert three[-1].size == (7, 7) and 3 * 9 == 27 < 49
assert vgg[-1].size == (14, 14) and (alex[-1].size, alex[-1].jump) == ((19, 19), (8, 8))
"""),
]

NOTEBOOKS = {
    "01_convolution_by_hand": CONVOLUTION,
    "02_output_sizes": SIZES,
    "03_volumes_and_parameters": VOLUMES,
    "04_pooling_relu_softmax": LAYERS,
    "05_backpropagation": BACKPROP,
    "06_training_lenet5": TRAINING,
    "07_image_filters": FILTERS,
    "08_receptive_fields": FIELDS,
}
