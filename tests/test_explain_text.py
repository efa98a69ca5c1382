"""explain's whole text for small cases, checked by hand line by line.

Every worked number of these outputs was recomputed by hand when the test was written; a change
to any line (a sign, a bracket, an index, a label, a number) fails here. Found necessary by the
mutation test (tests/MUTATION.md): most of explain's mutants change only the text.
"""

from __future__ import annotations

from cnnlab.tools import explain


def test_conv2d_two_channels_two_filters_bias_padding_and_check():
    """Two channels, two filters, one bias each, padding on the right, a check with five slips."""
    e = explain.conv2d("1 2 | 0 -1", ["1 | 2", "0 | -1"], "1 -2", padding=((0, 0), (0, 1)),
                       check="1 5 1 | 0 0 0")
    assert e.lines == [
        'conv2d: input 1×2×2, 2 filters 1×1×2, stride 1, dilation 1',
        'Output size, per axis: O = floor((n + p_begin + p_end - d·(k-1) - 1) / s) + 1',
        '  rows:     floor((1 + 0 + 0 - 1·(1-1) - 1) / 1) + 1 = 1',
        '  columns:  floor((2 + 0 + 1 - 1·(1-1) - 1) / 1) + 1 = 3',
        'Padding: top 0, bottom 0, left 0, right 1 (zeros)',
        '',
        'Padded input channel 0 (1×3):',
        '  1  2  0',
        'Padded input channel 1 (1×3):',
        '  0  -1  0',
        'Kernel 0 channel 0 (1×1):',
        '  1',
        'Kernel 0 channel 1 (1×1):',
        '  2',
        'Kernel 1 channel 0 (1×1):',
        '  0',
        'Kernel 1 channel 1 (1×1):',
        '  -1',
        'Bias: 1, -2',
        '',
        'Worked sums (Z[i,j] = Σ X_padded[i·1 + u·1, j·1 + v·1] · K[u,v] + b):',
        '  Z0[0,0]:',
        '    channel 0: 1*1 = 1',
        '    channel 1: 0*2 = 0',
        '    Z0[0,0] = 1 + 0 + bias 1 = 2',
        '  Z0[0,1]:',
        '    channel 0: 2*1 = 2',
        '    channel 1: (-1)*2 = -2',
        '    Z0[0,1] = 2 + (-2) + bias 1 = 1',
        '  Z0[0,2]:',
        '    channel 0: 0*1 = 0',
        '    channel 1: 0*2 = 0',
        '    Z0[0,2] = 0 + 0 + bias 1 = 1',
        '  Z1[0,0]:',
        '    channel 0: 1*0 = 0',
        '    channel 1: 0*(-1) = 0',
        '    Z1[0,0] = 0 + 0 + bias -2 = -2',
        '  Z1[0,1]:',
        '    channel 0: 2*0 = 0',
        '    channel 1: (-1)*(-1) = 1',
        '    Z1[0,1] = 0 + 1 + bias -2 = -1',
        '  Z1[0,2]:',
        '    channel 0: 0*0 = 0',
        '    channel 1: 0*(-1) = 0',
        '    Z1[0,2] = 0 + 0 + bias -2 = -2',
        '',
        'Output Z0 (1×3):',
        '  2  1  1',
        'Output Z1 (1×3):',
        '  -2  -1  -2',
        '',
        'Check: 1 of 6 entries right:',
        '  entry (0, 0, 0): you have 1, correct is 2',
        '    Z0[0,0]:',
        '        channel 0: 1*1 = 1',
        '        channel 1: 0*2 = 0',
        '        Z0[0,0] = 1 + 0 + bias 1 = 2',
        '  entry (0, 0, 1): you have 5, correct is 1',
        '    Z0[0,1]:',
        '        channel 0: 2*1 = 2',
        '        channel 1: (-1)*2 = -2',
        '        Z0[0,1] = 2 + (-2) + bias 1 = 1',
        '  entry (1, 0, 0): you have 0, correct is -2',
        '    Z1[0,0]:',
        '        channel 0: 1*0 = 0',
        '        channel 1: 0*(-1) = 0',
        '        Z1[0,0] = 0 + 0 + bias -2 = -2',
        '  entry (1, 0, 1): you have 0, correct is -1',
        '    Z1[0,1]:',
        '        channel 0: 2*0 = 0',
        '        channel 1: (-1)*(-1) = 1',
        '        Z1[0,1] = 0 + 1 + bias -2 = -1',
        '  entry (1, 0, 2): you have 0, correct is -2',
        '    Z1[0,2]:',
        '        channel 0: 0*0 = 0',
        '        channel 1: 0*(-1) = 0',
        '        Z1[0,2] = 0 + 0 + bias -2 = -2',
    ]


def test_conv2d_with_gradients():
    """The lecture's backward pass, every number written out."""
    e = explain.conv2d("1 2 3; 4 5 6; 7 8 9", "1 0; 0 -1", grad="1 -1; 2 0")
    assert e.lines == [
        'conv2d: input 3×3, 1 filter 2×2, stride 1, dilation 1',
        'Output size, per axis: O = floor((n + p_begin + p_end - d·(k-1) - 1) / s) + 1',
        '  rows:     floor((3 + 0 + 0 - 1·(2-1) - 1) / 1) + 1 = 2',
        '  columns:  floor((3 + 0 + 0 - 1·(2-1) - 1) / 1) + 1 = 2',
        'Padding: top 0, bottom 0, left 0, right 0 (zeros)',
        '',
        'Input (3×3):',
        '  1  2  3\n  4  5  6\n  7  8  9',
        'Kernel (2×2):',
        '  1   0\n  0  -1',
        '',
        'Worked sums (Z[i,j] = Σ X_padded[i·1 + u·1, j·1 + v·1] · K[u,v]):',
        '  Z[0,0] = 1*1 + 2*0 + 4*0 + 5*(-1) = -4',
        '  Z[0,1] = 2*1 + 3*0 + 5*0 + 6*(-1) = -4',
        '  Z[1,0] = 4*1 + 5*0 + 7*0 + 8*(-1) = -4',
        '  Z[1,1] = 5*1 + 6*0 + 8*0 + 9*(-1) = -4',
        '',
        'Output Z (2×2):',
        '  -4  -4\n  -4  -4',
        '',
        'Gradients (given dL/dZ):',
        '  1  -1\n  2   0',
        'dL/dB = Σ dL/dZ = 1 + (-1) + 2 + 0 = 2',
        'dL/dK = X ⋆ dL/dZ (the input cross-correlated with the output gradient):',
        '   7   9\n  13  15',
        '  dK[0,0] = 1*1 + 2*(-1) + 4*2 + 5*0 = 7',
        '  dK[0,1] = 2*1 + 3*(-1) + 5*2 + 6*0 = 9',
        '  dK[1,0] = 4*1 + 5*(-1) + 7*2 + 8*0 = 13',
        '  dK[1,1] = 5*1 + 6*(-1) + 8*2 + 9*0 = 15',
        'dL/dX = (dL/dZ zero-padded by k-1) ⋆ rot180(K) (the full convolution):',
        '  rot180(K) =',
        '    -1  0\n     0  1',
        '  dL/dX =',
        '    1  -1  0\n    2  -1  1\n    0  -2  0',
    ]


def test_true_convolution_with_stride_and_dilation():
    """A row: kernel rotated, stride 2, dilation 2 along the columns."""
    e = explain.conv2d("0 1 2 3 4", "1 2", flip=True, stride=2, dilation=(1, 2))
    assert e.lines == [
        'conv2d (true convolution: kernel rotated 180°): input 1×5, 1 filter 1×2, stride 2, '
        'dilation 1×2',
        'Output size, per axis: O = floor((n + p_begin + p_end - d·(k-1) - 1) / s) + 1',
        '  rows:     floor((1 + 0 + 0 - 1·(1-1) - 1) / 2) + 1 = 1',
        '  columns:  floor((5 + 0 + 0 - 2·(2-1) - 1) / 2) + 1 = 2',
        'Padding: top 0, bottom 0, left 0, right 0 (zeros)',
        '',
        'Input (1×5):',
        '  0  1  2  3  4',
        'Kernel (rotated 180°) (1×2):',
        '  2  1',
        '',
        'Worked sums (Z[i,j] = Σ X_padded[i·2 + u·1, j·2 + v·2] · K[u,v]):',
        '  Z[0,0] = 0*2 + 2*1 = 2',
        '  Z[0,1] = 2*2 + 4*1 = 8',
        '',
        'Output Z (1×2):',
        '  2  8',
    ]


def test_max_pool_of_two_channels_with_padding_and_check():
    """Padding is -∞ for max pooling."""
    e = explain.pool("1 -2; 3 4 | 0 5; -1 -6", 2, padding=1, check="1 -2; 3 4 | 0 5; -1 0")
    assert e.lines == [
        'max pooling: input 2×2×2, window 2, stride 2, padding 1',
        'Output size, per axis: O = floor((n + 2p - k) / s) + 1',
        '  rows:     floor((2 + 2·1 - 2) / 2) + 1 = 2',
        '  columns:  floor((2 + 2·1 - 2) / 2) + 1 = 2',
        '',
        'Padded input channel 0 (4×4):',
        '  -∞  -∞  -∞  -∞\n  -∞   1  -2  -∞\n  -∞   3   4  -∞\n  -∞  -∞  -∞  -∞',
        'Padded input channel 1 (4×4):',
        '  -∞  -∞  -∞  -∞\n  -∞   0   5  -∞\n  -∞  -1  -6  -∞\n  -∞  -∞  -∞  -∞',
        '',
        'Windows:',
        '  Z0[0,0] = max(-∞, -∞, -∞, 1) = 1',
        '  Z0[0,1] = max(-∞, -∞, -2, -∞) = -2',
        '  Z0[1,0] = max(-∞, 3, -∞, -∞) = 3',
        '  Z0[1,1] = max(4, -∞, -∞, -∞) = 4',
        '  Z1[0,0] = max(-∞, -∞, -∞, 0) = 0',
        '  Z1[0,1] = max(-∞, -∞, 5, -∞) = 5',
        '  Z1[1,0] = max(-∞, -1, -∞, -∞) = -1',
        '  Z1[1,1] = max(-6, -∞, -∞, -∞) = -6',
        '',
        'Output Z0 (2×2):',
        '  1  -2\n  3   4',
        'Output Z1 (2×2):',
        '   0   5\n  -1  -6',
        '',
        'Check: 7 of 8 entries right:',
        '  entry (1, 1, 1): you have 0, correct is -6',
        '    Z1[1,1] = max(-6, -∞, -∞, -∞) = -6',
    ]


def test_average_pool_with_check():
    """Negative values in brackets, the mean written as a sum over the count."""
    e = explain.pool("1 -2 4; 3 4 0", (2, 2), stride=1, mode="avg", check="1.5 2")
    assert e.lines == [
        'avg pooling: input 2×3, window 2, stride 1, padding 0',
        'Output size, per axis: O = floor((n + 2p - k) / s) + 1',
        '  rows:     floor((2 + 2·0 - 2) / 1) + 1 = 1',
        '  columns:  floor((3 + 2·0 - 2) / 1) + 1 = 2',
        '',
        'Input (2×3):',
        '  1  -2  4\n  3   4  0',
        '',
        'Windows:',
        '  Z[0,0] = (1 + (-2) + 3 + 4) / 4 = 1.5',
        '  Z[0,1] = ((-2) + 4 + 4 + 0) / 4 = 1.5',
        '',
        'Output Z (1×2):',
        '  1.5  1.5',
        '',
        'Check: 1 of 2 entries right:',
        '  entry (0, 1): you have 2, correct is 1.5',
        '    Z[0,1] = ((-2) + 4 + 4 + 0) / 4 = 1.5',
    ]


def test_relu_of_two_channels_with_check():
    e = explain.relu("-1 2 | 0 -3.5", check="0 2 | 0 3.5")
    assert e.lines == [
        'ReLU: Z = max(0, X), input 1×2×2',
        '',
        'Input channel 0:',
        '  -1  2',
        'Input channel 1:',
        '  0  -3.5',
        '',
        'Negative entries set to 0 (2 of 4):',
        '  X0[0,0] = max(0, -1) = 0',
        '  X1[0,1] = max(0, -3.5) = 0',
        '',
        'Output Z0 (1×2):',
        '  0  2',
        'Output Z1 (1×2):',
        '  0  0',
        '',
        'Check: 3 of 4 entries right:',
        '  entry (1, 0, 1): you have 3.5, correct is 0',
        '    max(0, -3.5) = 0',
    ]


def test_relu_without_negatives():
    e = explain.relu("1 2")
    assert e.lines == [
        'ReLU: Z = max(0, X), input 1×2',
        '',
        'Input:',
        '  1  2',
        '',
        'Negative entries set to 0 (0 of 2):',
        '  none: the output equals the input',
        '',
        'Output Z (1×2):',
        '  1  2',
    ]


def test_softmax_with_a_target():
    e = explain.softmax("1 2 0", target=2)
    assert e.lines == [
        'softmax of 3 scores: p_i = exp(z_i) / Σ_j exp(z_j)',
        '  (computed as exp(z_i - max z) / Σ_j exp(z_j - max z): the same value, no overflow)',
        '',
        'Scores: 1, 2, 0',
        'Exponentials:',
        '  exp(1) = 2.7183',
        '  exp(2) = 7.3891',
        '  exp(0) = 1',
        '  sum = 2.7183 + 7.3891 + 1 = 11.1073',
        'Probabilities:',
        '  p0 = 2.7183 / 11.1073 = 0.244728',
        '  p1 = 7.3891 / 11.1073 = 0.665241',
        '  p2 = 1 / 11.1073 = 0.090031',
        '  (they sum to 1)',
        '',
        'Cross-entropy for class 2: -log p2 = -log 0.090031 = 2.407606',
    ]


def test_padding_with_stride_2():
    e = explain.padding(6, 4, stride=2, pad=1)
    assert e.lines == [
        'padding for n = 6, kernel k = 4, stride s = 2, dilation d = 1 (the kernel spans '
        'd·(k-1) + 1 = 4)',
        'Output size: O = floor((n + p_begin + p_end - d·(k-1) - 1) / s) + 1',
        '',
        "  TensorFlow 'SAME'       before 1, after 1: O = floor((6 + 1 + 1 - 3 - 1) / 2) + "
        '1 = 3   (total = max((ceil(n/s) - 1)·s + d·(k-1) + 1 - n, 0); the odd pixel at the end)',
        "  JAX 'SAME_LOWER'        before 1, after 1: O = floor((6 + 1 + 1 - 3 - 1) / 2) + "
        '1 = 3   (the same total; the odd pixel at the start)',
        '  PyTorch p = d·(k-1)//2  before 1, after 1: O = floor((6 + 1 + 1 - 3 - 1) / 2) + '
        "1 = 3   (symmetric, the lecture's p = (f-1)/2)",
        "  'valid'                 before 0, after 0: O = floor((6 + 0 + 0 - 3 - 1) / 2) + "
        '1 = 2   (no padding)',
        '  padding 1               before 1, after 1: O = floor((6 + 1 + 1 - 3 - 1) / 2) + '
        '1 = 3   (as given)',
        "  PyTorch padding='same'  refused by PyTorch for stride 2 (cnnlab follows "
        "TensorFlow's rule)",
    ]


def test_padding_with_dilation():
    e = explain.padding(5, 3, dilation=2)
    assert e.lines == [
        'padding for n = 5, kernel k = 3, stride s = 1, dilation d = 2 (the kernel spans '
        'd·(k-1) + 1 = 5)',
        'Output size: O = floor((n + p_begin + p_end - d·(k-1) - 1) / s) + 1',
        '',
        "  TensorFlow 'SAME'       before 2, after 2: O = floor((5 + 2 + 2 - 4 - 1) / 1) + "
        '1 = 5   (total = max((ceil(n/s) - 1)·s + d·(k-1) + 1 - n, 0); the odd pixel at the end)',
        "  JAX 'SAME_LOWER'        before 2, after 2: O = floor((5 + 2 + 2 - 4 - 1) / 1) + "
        '1 = 5   (the same total; the odd pixel at the start)',
        '  PyTorch p = d·(k-1)//2  before 2, after 2: O = floor((5 + 2 + 2 - 4 - 1) / 1) + '
        "1 = 5   (symmetric, the lecture's p = (f-1)/2)",
        "  PyTorch padding='same'  before 2, after 2: O = floor((5 + 2 + 2 - 4 - 1) / 1) + "
        '1 = 5   (stride 1 only; the odd pixel at the end)',
        "  'valid'                 before 0, after 0: O = floor((5 + 0 + 0 - 4 - 1) / 1) + "
        '1 = 1   (no padding)',
    ]


def test_markdown_titles_and_blocks():
    e = explain.conv2d("1 2; 3 4", "1", check="1 2; 3 5")
    assert e.markdown == "\n".join([
        '```text',
        'conv2d: input 2×2, 1 filter 1×1, stride 1, dilation 1',
        'Output size, per axis: O = floor((n + p_begin + p_end - d·(k-1) - 1) / s) + 1',
        '  rows:     floor((2 + 0 + 0 - 1·(1-1) - 1) / 1) + 1 = 2',
        '  columns:  floor((2 + 0 + 0 - 1·(1-1) - 1) / 1) + 1 = 2',
        'Padding: top 0, bottom 0, left 0, right 0 (zeros)',
        '```',
        '',
        '**Input (2×2)**',
        '',
        '```text',
        '  1  2',
        '  3  4',
        '```',
        '',
        '**Kernel (1×1)**',
        '',
        '```text',
        '  1',
        '```',
        '',
        '**Worked sums (Z[i,j] = Σ X_padded[i·1 + u·1, j·1 + v·1] · K[u,v])**',
        '',
        '```text',
        '  Z[0,0] = 1*1 = 1',
        '  Z[0,1] = 2*1 = 2',
        '  Z[1,0] = 3*1 = 3',
        '  Z[1,1] = 4*1 = 4',
        '```',
        '',
        '**Output Z (2×2)**',
        '',
        '```text',
        '  1  2',
        '  3  4',
        '```',
        '',
        '**Check: 3 of 4 entries right**',
        '',
        '```text',
        '  entry (1, 1): you have 5, correct is 4',
        '    Z[1,1] = 4*1 = 4',
        '```',
        '',
    ])
    assert str(e) == e.text and e.kind == "conv2d"


def small_model():
    import numpy as np

    from cnnlab import nn
    net = nn.Sequential(nn.Conv2d(2, 2, 2, padding=(1, 0), stride=(1, 2)), nn.ReLU())
    net[0].weight.data[...] = np.arange(16, dtype=np.float32).reshape(2, 2, 2, 2) / 4 - 2
    net[0].bias.data[...] = [0.5, -1]
    return net, np.arange(18, dtype=np.float32).reshape(2, 3, 3) / 2


def test_one_value_of_a_model():
    net, x = small_model()
    e = explain.model(net, x, "0", (1, 2, 0))
    assert e.lines == [
        "layer 0 Conv2d(2→2, 2×2, stride 1×2, padding 1×0): output channel 1, row 2, column 0",
        "Its input: 3×3×2, the image",
        "Window: rows 2..3, columns 0..1 of the input padded by 1,1 (rows) and 0,0 (columns)",
        "",
        "Input channel 0, window and kernel:",
        "  1.5    2          0  0.25",
        "    3  3.5        0.5  0.75",
        "  1.5*0 + 2*0.25 + 3*0.5 + 3.5*0.75 = 4.6250",
        "",
        "Input channel 1, window and kernel:",
        "    6  6.5          1  1.25",
        "  7.5    8        1.5  1.75",
        "  6*1 + 6.5*1.25 + 7.5*1.5 + 8*1.75 = 39.3750",
        "",
        "Sum over the channels: 4.625 + 39.375 + bias (-1) = 43.0000 (the network computed "
        "43.0000)",
        "Then layer 1 ReLU: 43.0000 -> 43.0000",
    ]
    assert e.numbers == {"layer": "0", "at": [1, 2, 0], "channel_sums": [4.625, 39.375],
                         "bias": -1.0, "value": 43.0, "next": {"layer": "1", "value": 43.0}}


def test_model_mistakes():
    import pytest
    net, x = small_model()
    with pytest.raises(ValueError, match=r"^at: \(0, 4, 0\) is outside the layer's output "
                                         r"\(2 channels × 4×1\)\.$"):
        explain.model(net, x, "0", (0, 4, 0))
    with pytest.raises(ValueError, match=r"^expected one image \(C, H, W\), received shape "
                                         r"\(1, 2, 3, 3\)\.$"):
        explain.model(net, x[None], "0", (0, 0, 0))
    with pytest.raises(ValueError, match=r"^layer '1' is not a 2-D convolution of this model; "
                                         r"its convolutions: 0\.$"):
        explain.model(net, x, "1", (0, 0, 0))


def test_the_numbers_beside_the_text():
    pooled = explain.pool("1 -2; 3 4", 2, stride=1, padding=(0, 1))
    ninf = float("-inf")                   # max pooling pads with -inf: padding never wins
    assert pooled.numbers == {
        "input": [[[1, -2], [3, 4]]], "padded": [[[ninf, 1, -2, ninf], [ninf, 3, 4, ninf]]],
        "output": [[[3, 4, 4]]], "size": [2, 2], "stride": [1, 1], "padding": [0, 1],
        "entries": [
            {"index": [0, 0, 0], "value": 3, "text": "Z[0,0] = max(-∞, 1, -∞, 3) = 3",
             "window": {"rows": [0, 1], "columns": [0, 1]}},
            {"index": [0, 0, 1], "value": 4, "text": "Z[0,1] = max(1, -2, 3, 4) = 4",
             "window": {"rows": [0, 1], "columns": [1, 2]}},
            {"index": [0, 0, 2], "value": 4, "text": "Z[0,2] = max(-2, -∞, 4, -∞) = 4",
             "window": {"rows": [0, 1], "columns": [2, 3]}}]}
    assert pooled.kind == "max_pool" and explain.pool("1", 1, mode="avg").kind == "avg_pool"
    rectified = explain.relu("-1 2")
    assert rectified.numbers == {
        "input": [[[-1, 2]]], "output": [[[0, 2]]],
        "entries": [{"index": [0, 0, 0], "value": 0, "text": "Z[0,0] = max(0, -1) = 0",
                     "window": {"rows": [0], "columns": [0]}},
                    {"index": [0, 0, 1], "value": 2, "text": "Z[0,1] = max(0, 2) = 2",
                     "window": {"rows": [0], "columns": [1]}}]}
    assert rectified.kind == "relu" and rectified.wrong == []
    e = explain.softmax("0 0", target=0)
    assert e.numbers == {"scores": [0, 0], "probabilities": [0.5, 0.5],
                         "loss": __import__("pytest").approx(0.693147, abs=1e-6)}
    assert e.kind == "softmax"
    conv = explain.conv2d("1 2; 3 4", "1 -1", 2, padding=((0, 0), (1, 0)), dilation=(1, 1))
    assert conv.kind == "conv2d"
    assert conv.numbers == {
        "input": [[[1, 2], [3, 4]]], "padded": [[[0, 1, 2], [0, 3, 4]]],
        "kernel": [[[[1, -1]]]], "bias": [2], "stride": [1, 1], "dilation": [1, 1],
        "padding": [[0, 0], [1, 0]], "output": [[[1, 1], [-1, 1]]],
        "entries": [
            {"index": [0, 0, 0], "channels": [{"terms": [[0, 1], [1, -1]], "sum": -1}],
             "bias": 2, "value": 1, "text": "Z[0,0] = 0*1 + 1*(-1) + bias 2 = 1",
             "window": {"rows": [0], "columns": [0, 1]}},
            {"index": [0, 0, 1], "channels": [{"terms": [[1, 1], [2, -1]], "sum": -1}],
             "bias": 2, "value": 1, "text": "Z[0,1] = 1*1 + 2*(-1) + bias 2 = 1",
             "window": {"rows": [0], "columns": [1, 2]}},
            {"index": [0, 1, 0], "channels": [{"terms": [[0, 1], [3, -1]], "sum": -3}],
             "bias": 2, "value": -1, "text": "Z[1,0] = 0*1 + 3*(-1) + bias 2 = -1",
             "window": {"rows": [1], "columns": [0, 1]}},
            {"index": [0, 1, 1], "channels": [{"terms": [[3, 1], [4, -1]], "sum": -1}],
             "bias": 2, "value": 1, "text": "Z[1,1] = 3*1 + 4*(-1) + bias 2 = 1",
             "window": {"rows": [1], "columns": [1, 2]}}]}
    table = explain.padding(4, 2).numbers
    assert table == {"size": 4, "kernel_size": 2, "stride": 1, "dilation": 1, "schemes": [
        {"scheme": "TensorFlow 'SAME'", "before": 0, "after": 1, "output": 4},
        {"scheme": "JAX 'SAME_LOWER'", "before": 1, "after": 0, "output": 4},
        {"scheme": "PyTorch p = d·(k-1)//2", "before": 0, "after": 0, "output": 3},
        {"scheme": "PyTorch padding='same'", "before": 0, "after": 1, "output": 4},
        {"scheme": "'valid'", "before": 0, "after": 0, "output": 3}]}


def test_each_mistake_names_its_argument():
    import numpy as np
    import pytest
    for call, message in [
        (lambda: explain.conv2d(np.zeros((1, 1, 2, 2)), "1"),
         r"^input: expected a matrix \(H, W\) or channels \(C, H, W\), received shape "
         r"\(1, 1, 2, 2\)\.$"),
        (lambda: explain.pool(np.zeros((1, 1, 2, 2))), r"^input: expected a matrix"),
        (lambda: explain.relu(np.zeros((2, 0))), r"^input: expected a matrix .* \(1, 2, 0\)"),
        (lambda: explain.conv2d("1 2", np.zeros((1, 1, 1, 1, 1))),
         r"^kernel: expected \(kh, kw\), \(C, kh, kw\) or \(F, C, kh, kw\), received shape "
         r"\(1, 1, 1, 1, 1\)\.$"),
        (lambda: explain.conv2d("1 2", [np.inf]), r"^kernel: expected finite numbers\.$"),
        (lambda: explain.conv2d("1 2", "1", check=[1, 2, 3]),
         r"^check: expected an answer of shape 1×1×2 \(the output\), received 3 values in "
         r"shape 3\.$"),
        (lambda: explain.softmax("1 2", target=2),
         r"^target must be a class index in 0\.\.1, received 2\.$"),
        (lambda: explain.softmax("1 2", target=True), r"^target must be a class index"),
        (lambda: explain.softmax("1 | 2"), r"^input: expected a number, received '\|'\.$"),
        (lambda: explain.softmax("3"), r"^softmax needs at least 2 scores, received 1\.$"),
        (lambda: explain.padding(3, 0), r"^kernel_size must be a positive int, received 0\.$"),
        (lambda: explain.padding(3, 2, stride=True), r"^stride must be a positive int"),
        (lambda: explain.padding(3, 2, dilation=1.0), r"^dilation must be a positive int"),
        (lambda: explain.padding(3, 2, pad=-1), r"^pad must be a non-negative int, received "
                                                r"-1\.$"),
        (lambda: explain.padding(3, 2, pad=True), r"^pad must be a non-negative int"),
        (lambda: explain.conv2d(np.zeros((8, 8)), "1", at="a,b"),
         r"^at: expected integers such as 1,2, received 'a,b'\.$"),
        (lambda: explain.conv2d(np.zeros((8, 8)), "1", at=(1, 2, 3, 4)),
         r"^at: expected 2 or 3 indices, received \(1, 2, 3, 4\)\.$"),
    ]:
        with pytest.raises(ValueError, match=message):
            call()
