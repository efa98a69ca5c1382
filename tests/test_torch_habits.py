"""What a PyTorch user reaches for first works with torch's names, numbers and gradients.

Each conformance test runs the same call in cnnlab and in torch (skipped without torch) and
compares outputs and gradients; the rest check the documented semantics with literal answers.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

import cnnlab
from cnnlab import tensor

RNG = np.random.default_rng(7)
X = RNG.standard_normal((3, 4, 5))          # no ties: max/min indices are unique


def _torch():
    return pytest.importorskip("torch")


def _both(x: np.ndarray):
    torch = _torch()
    return tensor(x, requires_grad=True), torch.tensor(x, requires_grad=True)


def _close(ours, theirs, rtol=1e-12, atol=1e-12):
    np.testing.assert_allclose(np.asarray(ours.data if hasattr(ours, "data") else ours),
                               theirs.detach().numpy(), rtol=rtol, atol=atol)


# ------------------------------------------------------------------ tensor methods vs torch
DIFFERENTIABLE = [
    ("sum()", lambda t: t.sum()),
    ("sum(dim=1)", lambda t: t.sum(dim=1)),
    ("sum(dim=1, keepdim=True)", lambda t: t.sum(dim=1, keepdim=True)),
    ("sum((0, 2))", lambda t: t.sum((0, 2))),
    ("sum(dim=-1, keepdim=True)", lambda t: t.sum(dim=-1, keepdim=True)),
    ("mean()", lambda t: t.mean()),
    ("mean(1)", lambda t: t.mean(1)),
    ("mean(dim=(1, 2), keepdim=True)", lambda t: t.mean(dim=(1, 2), keepdim=True)),
    ("max()", lambda t: t.max()),
    ("min()", lambda t: t.min()),
    ("max(1).values", lambda t: t.max(1).values),
    ("max(dim=-1, keepdim=True)[0]", lambda t: t.max(dim=-1, keepdim=True)[0]),
    ("min(0).values", lambda t: t.min(0).values),
    ("min(dim=2, keepdim=True).values", lambda t: t.min(dim=2, keepdim=True).values),
    ("amax(dim=(0, 2))", lambda t: t.amax(dim=(0, 2))),
    ("amin(1, keepdim=True)", lambda t: t.amin(1, keepdim=True)),
    ("clone()", lambda t: t.clone()),
    ("float()", lambda t: t.float()),
    ("double()", lambda t: t.double()),
    ("relu()", lambda t: t.relu()),
    ("sigmoid()", lambda t: t.sigmoid()),
    ("tanh()", lambda t: t.tanh()),
    ("softmax(dim=1)", lambda t: t.softmax(dim=1)),
    ("log_softmax(-1)", lambda t: t.log_softmax(-1)),
    ("view(3, -1)", lambda t: t.view(3, -1)),
    ("reshape(-1)", lambda t: t.reshape(-1)),
    ("permute(2, 0, 1)", lambda t: t.permute(2, 0, 1)),
    ("flatten(1)", lambda t: t.flatten(1)),
    ("unsqueeze(0)", lambda t: t.unsqueeze(0)),
    ("unsqueeze(-1)", lambda t: t.unsqueeze(-1)),
    ("unsqueeze(1).squeeze()", lambda t: t.unsqueeze(1).squeeze()),
    ("unsqueeze(1).squeeze(1)", lambda t: t.unsqueeze(1).squeeze(1)),
    ("squeeze(0) of size 3 is a no-op", lambda t: t.squeeze(0)),
    ("unsqueeze(2).squeeze((0, 2))", lambda t: t.unsqueeze(2).squeeze((0, 2))),
    ("transpose(0, 2)", lambda t: t.transpose(0, 2)),
    ("contiguous().cpu()", lambda t: t.contiguous().cpu()),
]


@pytest.mark.parametrize("name, op", DIFFERENTIABLE, ids=[n for n, _ in DIFFERENTIABLE])
def test_method_value_and_gradient_match_torch(name, op):
    ours, theirs = _both(X)
    y, q = op(ours), op(theirs)
    assert y.shape == tuple(q.shape)
    assert y.dtype == np.dtype(str(q.dtype).removeprefix("torch."))
    _close(y, q)
    g = RNG.standard_normal(y.shape)
    y.backward(g.astype(y.dtype))
    q.backward(_torch().tensor(g, dtype=q.dtype))
    _close(ours.grad, theirs.grad)


INDEXING = [
    ("max(1).indices", lambda t: t.max(1).indices),
    ("min(dim=0, keepdim=True)[1]", lambda t: t.min(dim=0, keepdim=True)[1]),
    ("argmax()", lambda t: t.argmax()),
    ("argmax(1)", lambda t: t.argmax(1)),
    ("argmax(dim=-1, keepdim=True)", lambda t: t.argmax(dim=-1, keepdim=True)),
    ("argmin(0)", lambda t: t.argmin(0)),
    ("long()", lambda t: t.long()),
    ("int()", lambda t: t.int()),
    ("bool()", lambda t: t.bool()),
]


@pytest.mark.parametrize("name, op", INDEXING, ids=[n for n, _ in INDEXING])
def test_integer_results_match_torch_and_carry_no_gradient(name, op):
    ours, theirs = _both(X * 3)
    y, q = op(ours), op(theirs)
    np.testing.assert_array_equal(y.data, q.numpy())
    assert y.dtype == np.dtype(str(q.dtype).removeprefix("torch."))
    assert not y.requires_grad and not q.requires_grad


def test_queries_match_torch():
    ours, theirs = _both(X)
    assert ours.size() == tuple(theirs.size())
    assert [ours.size(d) for d in (0, 1, 2, -1)] == [theirs.size(d) for d in (0, 1, 2, -1)]
    assert ours.size(dim=1) == 4
    assert ours.dim() == theirs.dim() == 3
    assert ours.numel() == theirs.numel() == 60
    assert ours.tolist() == theirs.tolist()
    assert tensor(2.5).tolist() == 2.5 and tensor(3).item() == 3
    assert ours.shape == tuple(theirs.shape)


def test_size_is_still_the_element_count():
    """NumPy's ``t.size`` (an int) keeps working beside torch's ``t.size()``."""
    t = tensor(np.zeros((3, 4)))
    assert t.size == 12 and t.size + 1 == 13 and isinstance(t.size, int)
    assert f"{t.size:,}" == "12" and sum(p.size for p in (t, t)) == 24
    assert pickle.loads(pickle.dumps(t.size)) == 12
    with pytest.raises(IndexError, match=r"size\(\): dim 2 is out of range for a 2-D tensor"):
        t.size(2)
    with pytest.raises(IndexError, match=r"size\(0\): a 0-d tensor has no dimensions"):
        tensor(1.0).size(0)
    assert tensor(1.0).size() == () and tensor(1.0).size == 1
    with pytest.raises(TypeError, match=r"to\(\) expects a NumPy dtype .* received 'cuda'"):
        t.to("cuda")


def test_max_with_dim_sends_the_gradient_to_the_returned_index_only():
    t = tensor([[1.0, 5.0, 5.0], [2.0, 0.0, 2.0]], requires_grad=True)
    values, indices = t.max(dim=1)
    np.testing.assert_array_equal(values.data, [5.0, 2.0])
    np.testing.assert_array_equal(indices.data, [1, 0])           # the first maximum
    values.backward(np.array([1.0, 10.0], np.float32))
    np.testing.assert_array_equal(t.grad, [[0, 1, 0], [10, 0, 0]])
    t.grad = None
    t.max(axis=1).sum().backward()                                 # NumPy's amax: ties share
    np.testing.assert_array_equal(t.grad, [[0, 0.5, 0.5], [0.5, 0, 0.5]])


def test_numpy_is_refused_while_the_tensor_requires_grad():
    t = tensor([1.0, 2.0], requires_grad=True)
    with pytest.raises(RuntimeError, match=r"Use tensor\.detach\(\)\.numpy\(\) instead"):
        t.numpy()
    assert t.detach().numpy() is t.data
    y = t * 2
    with pytest.raises(RuntimeError, match="requires grad"):
        y.numpy()
    with cnnlab.no_grad():
        np.testing.assert_array_equal((t * 2).numpy(), [2.0, 4.0])


def test_casts_to_the_same_dtype_return_the_tensor_itself():
    t = tensor([1.0, 2.0], requires_grad=True)
    assert t.float() is t and t.to(np.float32) is t and t.to("cpu") is t
    d = t.double()
    assert d.dtype == np.float64 and d.requires_grad
    (d * d).sum().backward()
    assert t.grad.dtype == np.float32
    np.testing.assert_array_equal(t.grad, [2.0, 4.0])


def test_clone_copies_the_data():
    t = tensor([1.0, 2.0])
    c = t.clone()
    c.data[0] = 9.0
    assert t.data[0] == 1.0


@pytest.mark.parametrize("call, error, match", [
    (lambda t: t.unsqueeze(4), IndexError, r"unsqueeze\(\): dim 4 is out of range.*\[-4, 3\]"),
    (lambda t: t.squeeze(3), IndexError, r"squeeze\(\): dim 3 is out of range"),
    (lambda t: t.max(dim=(0, 1)), TypeError, r"max\(dim\) takes one int dim.*amax"),
    (lambda t: t.argmax(1.5), TypeError, r"argmax\(\) expects dim to be one int"),
    (lambda t: t.sum(dim=1, axis=1), TypeError, r"sum\(\) takes dim or axis, not both"),
    (lambda t: t.softmax(3), IndexError, r"softmax\(\): dim 3 is out of range"),
    (lambda t: t.sum(dim=5), ValueError, r"axis 5 is out of range for a 3-D tensor"),
])
def test_bad_dims_name_the_method_and_the_range(call, error, match):
    with pytest.raises(error, match=match):
        call(tensor(X))


# ------------------------------------------------------------------ optim.StepLR
def test_optim_steplr_points_to_lr_scheduler():
    from cnnlab import optim
    with pytest.raises(AttributeError, match=r"use optim\.lr_scheduler\.StepLR"):
        optim.StepLR  # noqa: B018
    with pytest.raises(AttributeError, match="has no attribute 'Nope'"):
        optim.Nope  # noqa: B018
    assert optim.lr_scheduler.StepLR is not None


# ------------------------------------------------------------------ containers
def _torch_stack(torch):
    class _Stack(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.layers = torch.nn.ModuleList([torch.nn.Linear(4, 3), torch.nn.Linear(3, 2)])
            self.heads = torch.nn.ModuleDict({"a": torch.nn.Linear(2, 2),
                                              "b": torch.nn.Conv2d(1, 1, 3)})

        def forward(self, x):
            for layer in self.layers:
                x = layer(x).relu()
            return self.heads["a"](x)

    return _Stack()


class _Stack(cnnlab.nn.Module):
    def __init__(self):
        super().__init__()
        nn = cnnlab.nn
        self.layers = nn.ModuleList([nn.Linear(4, 3), nn.Linear(3, 2)])
        self.heads = nn.ModuleDict({"a": nn.Linear(2, 2), "b": nn.Conv2d(1, 1, 3)})

    def forward(self, x):
        for layer in self.layers:
            x = layer(x).relu()
        return self.heads["a"](x)


def test_modulelist_and_moduledict_state_dict_loads_into_torch():
    torch = _torch()
    ours, theirs = _Stack().double(), _torch_stack(torch).double()
    assert list(ours.state_dict()) == list(theirs.state_dict())
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    x = RNG.standard_normal((5, 4))
    _close(ours(x), theirs(torch.tensor(x)))
    ours.load_state_dict({k: v.numpy() for k, v in theirs.state_dict().items()})


def test_modulelist_behaves_like_a_list():
    nn = cnnlab.nn
    layers = nn.ModuleList([nn.ReLU(), nn.Tanh()])
    layers.append(nn.Sigmoid())
    layers += [nn.Identity()]
    layers.insert(0, nn.Linear(2, 2))
    assert [type(m).__name__ for m in layers] == ["Linear", "ReLU", "Tanh", "Sigmoid",
                                                  "Identity"]
    assert isinstance(layers[-1], nn.Identity) and len(layers[1:3]) == 2
    del layers[1]
    assert list(layers._modules) == ["0", "1", "2", "3"]
    assert list(layers.state_dict()) == ["0.weight", "0.bias"]
    layers[0] = nn.ReLU()
    assert list(layers.state_dict()) == []
    with pytest.raises(IndexError, match="ModuleList has 4 modules, received index 4"):
        layers[4]  # noqa: B018
    with pytest.raises(TypeError, match="ModuleList holds Modules, received int at 4"):
        layers.append(3)


def test_moduledict_behaves_like_a_dict():
    nn = cnnlab.nn
    heads = nn.ModuleDict([("x", nn.ReLU())])
    heads["y"] = nn.Linear(1, 1)
    heads.update({"z": nn.Tanh()})
    assert list(heads) == ["x", "y", "z"] and "y" in heads and len(heads) == 3
    assert isinstance(heads.pop("x"), nn.ReLU) and list(heads.keys()) == ["y", "z"]
    with pytest.raises(KeyError, match=r"ModuleDict has no module 'q'; it holds \['y', 'z'\]"):
        heads["q"]  # noqa: B018
    with pytest.raises(KeyError, match="without '.'"):
        heads["a.b"] = nn.ReLU()


def test_apply_visits_children_before_the_parent_as_torch():
    torch = _torch()
    ours, theirs = _Stack(), _torch_stack(torch)
    seen_ours, seen_theirs = [], []
    ours.apply(lambda m: seen_ours.append(type(m).__name__))
    theirs.apply(lambda m: seen_theirs.append(type(m).__name__))
    assert seen_ours == seen_theirs
    assert seen_ours[-1] == "_Stack" and seen_ours[0] == "Linear"


# ------------------------------------------------------------------ channel dropout
@pytest.mark.parametrize("layer, shape", [("Dropout1d", (20, 30, 7)), ("Dropout2d", (20, 30, 4, 5)),
                                          ("Dropout3d", (20, 30, 2, 3, 4)),
                                          ("Dropout3d", (30, 2, 3, 4)), ("Dropout1d", (30, 7))])
def test_channel_dropout_zeroes_whole_channels_and_scales(layer, shape):
    cnnlab.manual_seed(3)
    p = 0.3
    x = tensor(RNG.uniform(1, 2, shape), requires_grad=True)
    y = getattr(cnnlab.nn, layer)(p)(x)
    nd = int(layer[-2])
    kept = y.data != 0
    per_channel = kept.reshape(*shape[:len(shape) - nd], -1)
    assert np.all(per_channel.all(-1) | ~per_channel.any(-1))           # all or nothing
    np.testing.assert_allclose(y.data[kept], x.data[kept] / (1 - p), rtol=1e-12)
    dropped = 1 - per_channel.all(-1).mean()
    assert abs(dropped - p) < 0.1, dropped
    y.sum().backward()
    np.testing.assert_allclose(x.grad, kept / (1 - p), rtol=1e-12)
    model = getattr(cnnlab.nn, layer)(p).eval()
    assert model(x) is x


def test_channel_dropout_matches_torch_statistics_and_errors():
    torch = _torch()
    x = np.ones((200, 50, 3, 3))
    ours = cnnlab.nn.Dropout2d(0.4)(x).data
    theirs = torch.nn.Dropout2d(0.4)(torch.tensor(x)).numpy()
    assert sorted(np.unique(ours)) == sorted(np.unique(theirs))        # {0, 1/(1-p)}
    assert abs((ours == 0).mean() - (theirs == 0).mean()) < 0.03
    with pytest.raises(ValueError, match=r"dropout2d received a 3-D input of shape \(2, 3, 4\)"):
        cnnlab.nn.Dropout2d()(np.ones((2, 3, 4)))
    with pytest.raises(ValueError, match=r"dropout1d expects a batch \(N, C, L\) or one sample "
                                         r"\(C, L\), received a 4-D input"):
        cnnlab.functional.dropout1d(np.ones((2, 3, 4, 5)))


# ------------------------------------------------------------------ hooks
def _hooked(nn_module, log, net):
    handles = []
    for name, m in net.named_modules():
        name = name or "net"
        handles.append(m.register_forward_pre_hook(
            lambda mod, args, n=name: log.append(("pre", n, tuple(args[0].shape)))))
        handles.append(m.register_forward_hook(
            lambda mod, args, out, n=name: log.append(("fwd", n, tuple(out.shape)))))
        handles.append(m.register_full_backward_hook(
            lambda mod, gi, go, n=name: log.append(
                ("bwd", n, tuple(None if g is None else tuple(g.shape) for g in gi),
                 tuple(tuple(g.shape) for g in go)))))
    return handles


@pytest.mark.filterwarnings("ignore:Full backward hook is firing")
def test_hooks_fire_in_torchs_order_with_torchs_arguments():
    torch = _torch()
    ours = cnnlab.nn.Sequential(cnnlab.nn.Linear(4, 3), cnnlab.nn.ReLU(),
                                cnnlab.nn.Linear(3, 2)).double()
    theirs = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(),
                                 torch.nn.Linear(3, 2)).double()
    theirs.load_state_dict({k: torch.tensor(v) for k, v in ours.state_dict().items()})
    log_ours, log_theirs = [], []
    handles = _hooked(cnnlab.nn, log_ours, ours)
    _hooked(torch.nn, log_theirs, theirs)
    x = RNG.standard_normal((5, 4))
    t = tensor(x, requires_grad=True)
    q = torch.tensor(x, requires_grad=True)
    ours(t).sum().backward()
    theirs(q).sum().backward()
    assert log_ours == log_theirs and len(log_ours) == 3 * 4          # 4 modules, 3 kinds
    _close(t.grad, q.grad)
    log_ours.clear()
    log_theirs.clear()
    ours(x).sum().backward()                         # the input needs no gradient
    theirs(torch.tensor(x)).sum().backward()
    assert log_ours == log_theirs
    for h in handles:
        h.remove()
    log_ours.clear()
    ours(t).sum().backward()
    assert log_ours == []


def test_hooks_can_replace_inputs_outputs_and_input_gradients():
    nn = cnnlab.nn
    layer = nn.Identity()
    with layer.register_forward_pre_hook(lambda m, args: args[0] * 2):
        with layer.register_forward_hook(lambda m, args, out: out + 1):
            assert layer(tensor([1.0])).item() == 3.0
    assert layer(tensor([1.0])).item() == 1.0
    x = tensor([1.0, 2.0], requires_grad=True)
    layer.register_full_backward_hook(lambda m, gi, go: (gi[0] * 10,))
    (layer(x) * 3).sum().backward()
    np.testing.assert_array_equal(x.grad, [30.0, 30.0])
    with pytest.raises(TypeError, match="register_forward_hook expects a callable"):
        layer.register_forward_hook(3)


# ------------------------------------------------------------------ gradient clipping
def _grads_pair(torch, shapes=((3, 4), (4,), (2, 2, 2))):
    ours, theirs = [], []
    for shape in shapes:
        g = RNG.standard_normal(shape).astype(np.float32) * 3
        p = cnnlab.nn.Parameter(np.zeros(shape, np.float32))
        p.grad = g.copy()
        q = torch.zeros(shape, requires_grad=True)
        q.grad = torch.tensor(g)
        ours.append(p)
        theirs.append(q)
    return ours, theirs


@pytest.mark.parametrize("max_norm, norm_type", [(1.0, 2.0), (100.0, 2.0), (0.5, 1.0),
                                                 (2.0, float("inf")), (2.0, "inf"), (1.0, 3.0),
                                                 (0.1, -float("inf"))])
def test_clip_grad_norm_matches_torch(max_norm, norm_type):
    torch = _torch()
    ours, theirs = _grads_pair(torch)
    total = cnnlab.nn.utils.clip_grad_norm_(iter(ours), max_norm, norm_type=norm_type)
    expected = torch.nn.utils.clip_grad_norm_(theirs, max_norm, norm_type=norm_type)
    np.testing.assert_allclose(total.item(), expected.item(), rtol=1e-6)
    assert total.dtype == np.float32
    for p, q in zip(ours, theirs):
        np.testing.assert_allclose(p.grad, q.grad.numpy(), rtol=1e-6, atol=1e-7)


def test_clip_grad_norm_nonfinite_and_empty():
    torch = _torch()
    ours, theirs = _grads_pair(torch)
    ours[0].grad[0, 0] = theirs[0].grad[0, 0] = float("nan")
    with pytest.raises(RuntimeError, match="is non-finite, so it cannot be clipped"):
        cnnlab.nn.utils.clip_grad_norm_(ours, 1.0, error_if_nonfinite=True)
    with pytest.raises(RuntimeError, match="is non-finite, so it cannot be clipped"):
        torch.nn.utils.clip_grad_norm_(theirs, 1.0, error_if_nonfinite=True)
    assert np.isnan(cnnlab.nn.utils.clip_grad_norm_(ours, 1.0).item())
    assert cnnlab.nn.utils.clip_grad_norm_([cnnlab.nn.Parameter([1.0])], 1.0).item() == 0.0


def test_clip_grad_value_matches_torch():
    torch = _torch()
    ours, theirs = _grads_pair(torch)
    assert cnnlab.nn.utils.clip_grad_value_(ours, 1.5) is None
    torch.nn.utils.clip_grad_value_(theirs, 1.5)
    for p, q in zip(ours, theirs):
        np.testing.assert_array_equal(p.grad, q.grad.numpy())
    assert max(np.abs(p.grad).max() for p in ours) == np.float32(1.5)


# ------------------------------------------------------------------ random_split and Subset
SPLITS = [(10, [0.3, 0.3, 0.4]), (11, [0.5, 0.5]), (7, [0.1, 0.2, 0.7]), (5, [1 / 3] * 3),
          (3, [0.1, 0.9]), (10, [3, 7]), (8000, [0.8, 0.2]), (4, [4, 0])]


@pytest.mark.parametrize("n, lengths", SPLITS)
def test_random_split_sizes_match_torch_and_parts_are_disjoint(n, lengths):
    torch = _torch()
    from cnnlab.data import random_split
    ours = random_split(list(range(n)), lengths, seed=1)
    theirs = torch.utils.data.random_split(range(n), lengths)
    assert [len(s) for s in ours] == [len(s) for s in theirs]
    everything = np.concatenate([s.indices for s in ours])
    assert sorted(everything.tolist()) == list(range(n))
    assert [list(s) for s in ours] == [s.indices.tolist() for s in ours]     # items = indices


def test_random_split_repeats_with_a_seed_or_generator():
    from cnnlab.data import random_split
    first = random_split(list(range(50)), [0.5, 0.5], seed=3)
    again = random_split(list(range(50)), [0.5, 0.5], generator=np.random.default_rng(3))
    other = random_split(list(range(50)), [0.5, 0.5], seed=4)
    assert first[0].indices.tolist() == again[0].indices.tolist()
    assert first[0].indices.tolist() != other[0].indices.tolist()
    cnnlab.manual_seed(5)
    a = random_split(list(range(50)), [25, 25])
    cnnlab.manual_seed(5)
    b = random_split(list(range(50)), [25, 25])
    assert a[1].indices.tolist() == b[1].indices.tolist()


@pytest.mark.parametrize("lengths, match", [
    ([3, 3], r"lengths \[3, 3\] sum to 6, the dataset has 10 items"),
    ([0.5, 0.6], r"fractions must sum to 1, received \[0.5, 0.6\] \(sum 1.1\)"),
    ([-1, 11], "must be non-negative ints or fractions"),
    ([], "must be non-negative ints or fractions"),
])
def test_random_split_refuses_lengths_that_do_not_fit(lengths, match):
    from cnnlab.data import random_split
    with pytest.raises(ValueError, match=match):
        random_split(list(range(10)), lengths)


def test_subset_of_an_array_dataset_feeds_the_data_loader():
    from cnnlab.data import ArrayDataset, DataLoader, Subset
    images = np.arange(12, dtype=np.float32).reshape(6, 1, 1, 2)
    ds = ArrayDataset(images, [0, 1, 0, 1, 0, 1], ["even", "odd"])
    part = Subset(ds, [5, 0, -2])
    assert len(part) == 3 and part[0][1] == 1 and part[2][0].tolist() == [[[8.0, 9.0]]]
    np.testing.assert_array_equal(part.labels, [1, 0, 0])
    x, y = next(iter(DataLoader(part, batch_size=3)))
    np.testing.assert_array_equal(x, images[[5, 0, 4]])
    nested = Subset(part, [1])
    assert nested[0][1] == 0 and nested.images.shape == (1, 1, 1, 2)
    with pytest.raises(IndexError, match=r"Subset indices must lie in \[-6, 6\)"):
        Subset(ds, [6])
    with pytest.raises(IndexError, match="index 3 is out of range for a Subset of 3 items"):
        part[3]  # noqa: B018


# ------------------------------------------------------------------ RandomAffine, RandomRotation
def _torchvision_warp(torch, x, matrices, mode, fill):
    """torchvision's tensor path (``_gen_affine_grid`` + ``grid_sample`` + its fill mask rule),
    written with torch's own grid_sample; torchvision itself is not installed here."""
    batch, channels, height, width = x.shape
    out = []
    for b in range(batch):
        theta = torch.tensor(matrices[b], dtype=torch.float64).view(1, 2, 3)
        base = torch.empty(1, height, width, 3, dtype=torch.float64)
        base[..., 0] = torch.linspace(-width * 0.5 + 0.5, width * 0.5 - 0.5, width)
        base[..., 1] = torch.linspace(-height * 0.5 + 0.5, height * 0.5 - 0.5,
                                      height).unsqueeze(-1)
        base[..., 2] = 1
        scaled = theta.transpose(1, 2) / torch.tensor([0.5 * width, 0.5 * height],
                                                      dtype=torch.float64)
        grid = base.view(1, -1, 3).bmm(scaled).view(1, height, width, 2)
        image = torch.cat([torch.tensor(x[b:b + 1]), torch.ones(1, 1, height, width,
                                                                dtype=torch.float64)], 1)
        sampled = torch.nn.functional.grid_sample(image, grid, mode=mode, padding_mode="zeros",
                                                  align_corners=False)
        value, mask = sampled[:, :-1], sampled[:, -1:].expand(1, channels, height, width)
        fill_image = torch.tensor(fill, dtype=torch.float64).view(1, -1, 1, 1).expand_as(value)
        if mode == "nearest":
            value = torch.where(mask < 0.5, fill_image, value)
        else:
            value = value * mask + (1 - mask) * fill_image
        out.append(value.numpy())
    return np.concatenate(out)


@pytest.mark.parametrize("mode", ["nearest", "bilinear"])
@pytest.mark.parametrize("fill", [[0.0, 0.0], [0.5, -1.0]])
def test_affine_warp_matches_torchvisions_grid_sample_path(mode, fill):
    torch = _torch()
    from cnnlab.data.affine import inverse_affine_matrix, warp_affine
    x = RNG.random((4, 2, 7, 9))
    params = [(30, (1, -2), 1.2, (10, 5), (0, 0)), (-75, (0, 0), 0.8, (0, 0), (1.5, -0.5)),
              (0, (3, 1), 1.0, (-20, 0), (0, 0)), (180, (0, 0), 1.0, (0, 0), (0, 0))]
    matrices = np.stack([inverse_affine_matrix(*p) for p in params])
    ours = warp_affine(x, matrices, mode, np.array(fill))
    np.testing.assert_allclose(ours, _torchvision_warp(torch, x, matrices, mode, fill),
                               atol=1e-12)


def test_affine_conventions_by_hand():
    """torchvision's conventions: +tx moves the picture right, +ty down, x-shear moves rows
    below the centre left, rotation angles of ``affine`` turn clockwise."""
    from cnnlab.data.affine import inverse_affine_matrix, warp_affine
    x = np.arange(25.0).reshape(1, 1, 5, 5)
    shifted = warp_affine(x, inverse_affine_matrix(0, (2, 1), 1, (0, 0))[None], fill=-1)
    expected = np.full((5, 5), -1.0)
    expected[1:, 2:] = x[0, 0, :4, :3]
    np.testing.assert_array_equal(shifted[0, 0], expected)
    sheared = warp_affine(x, inverse_affine_matrix(0, (0, 0), 1, (45, 0))[None])[0, 0]
    np.testing.assert_array_equal(sheared[3], [16, 17, 18, 19, 0])     # row below: one left
    np.testing.assert_array_equal(sheared[1], [0, 5, 6, 7, 8])         # row above: one right
    clockwise = warp_affine(x, inverse_affine_matrix(90, (0, 0), 1, (0, 0))[None])[0, 0]
    np.testing.assert_array_equal(clockwise, np.rot90(x[0, 0], k=-1))


@pytest.mark.parametrize("size", [4, 5])
def test_random_rotation_turns_counter_clockwise_as_torchvision(size):
    from cnnlab.data import transforms as T
    x = RNG.random((3, 2, size, size)).astype(np.float32)
    for angle, k in ((90, 1), (-90, -1), (180, 2)):
        y = T.RandomRotation((angle, angle))(x, np.random.default_rng(0))
        np.testing.assert_array_equal(y, np.rot90(x, k=k, axes=(2, 3)))
        assert y.dtype == np.float32
    same = T.RandomAffine(0)(x, np.random.default_rng(0))
    np.testing.assert_array_equal(same, x)


def test_random_affine_translations_stay_in_range_and_fill():
    from cnnlab.data import transforms as T
    x = RNG.uniform(1, 2, (40, 1, 10, 10))
    y = T.RandomAffine(0, translate=(0.2, 0.1), fill=-5)(x, np.random.default_rng(1))
    shifts = set()
    for image, out in zip(x[:, 0], y[:, 0]):
        found = [(dx, dy) for dx in range(-2, 3) for dy in range(-1, 2)
                 if np.array_equal(out, _shift(image, dx, dy, -5.0))]
        assert len(found) == 1
        shifts.add(found[0])
    assert len(shifts) > 5                                        # each image its own shift


def _shift(image, dx, dy, fill):
    out = np.full_like(image, fill)
    h, w = image.shape
    out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = \
        image[max(-dy, 0):h + min(-dy, 0), max(-dx, 0):w + min(-dx, 0)]
    return out


def test_random_affine_repeats_in_the_data_loader_and_keeps_the_batch_protocol():
    from cnnlab.data import ArrayDataset, DataLoader
    from cnnlab.data import transforms as T
    ds = ArrayDataset(RNG.random((8, 1, 12, 12)).astype(np.float32), np.zeros(8, int), ["a"])
    augment = T.Compose([T.RandomRotation(20, interpolation="bilinear"),
                         T.RandomAffine(0, scale=(0.8, 1.2), shear=(-10, 10, -5, 5))])
    first = next(iter(DataLoader(ds, batch_size=8, seed=3, transform=augment)))[0]
    again = next(iter(DataLoader(ds, batch_size=8, seed=3, transform=augment)))[0]
    np.testing.assert_array_equal(first, again)
    assert first.shape == (8, 1, 12, 12) and not np.array_equal(first, ds.images)


@pytest.mark.parametrize("make, match", [
    (lambda T: T.RandomRotation(-3), "degrees must be non-negative when it is a single number"),
    (lambda T: T.RandomRotation((1, 2, 3)), "degrees must be a number or a sequence of 2"),
    (lambda T: T.RandomRotation(10, expand=True), "expand=True gives every image its own size"),
    (lambda T: T.RandomAffine(0, translate=(0.5, 2)), r"translate values must lie in \[0, 1\]"),
    (lambda T: T.RandomAffine(0, scale=(0, 1)), "scale values must be positive"),
    (lambda T: T.RandomAffine(0, shear=(1, 2, 3)), "shear must be a number or a sequence of 4"),
    (lambda T: T.RandomAffine(0, interpolation="cubic"), "'nearest' or 'bilinear'"),
    (lambda T: T.RandomAffine(0, fill="white"), "fill must be a number or one number per"),
])
def test_affine_transforms_refuse_bad_arguments(make, match):
    from cnnlab.data import transforms as T
    with pytest.raises(ValueError, match=match):
        make(T)


def test_affine_fill_must_fit_the_channels():
    from cnnlab.data import transforms as T
    with pytest.raises(ValueError, match="RandomRotation: fill has 2 values for a batch with 3"):
        T.RandomRotation(5, fill=(0, 1))(np.zeros((1, 3, 4, 4), np.float32))


def test_model_to_cpu_is_the_model():
    net = cnnlab.nn.Linear(2, 2)
    assert net.to("cpu") is net and net.weight.dtype == np.float32


def test_subset_rows_are_copied_once_per_source_array():
    from cnnlab.data import ArrayDataset, Subset
    ds = ArrayDataset(np.zeros((5, 1, 2, 2), np.float32), [0, 1, 0, 1, 0], ["a", "b"])
    part = Subset(ds, [4, 1])
    assert part.images is part.images and part.labels.tolist() == [0, 1]
    ds.labels = np.array([1, 0, 1, 0, 1])                       # a new array is read anew
    assert part.labels.tolist() == [1, 0]
