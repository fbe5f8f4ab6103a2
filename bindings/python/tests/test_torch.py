"""mpq.torch: describe() against the zoo, quantized() against the built-in runtime bit for bit,
exact restore, the evaluator and a search on a PyTorch model."""


import numpy as np
import pytest

import mpq
from conftest import requires

torch = pytest.importorskip("torch")
nn = torch.nn
import mpq.torch as mt  # noqa: E402

F = np.float32


@pytest.mark.parametrize("tv_name,zoo_name", [
    ("resnet18", "resnet18"), ("resnet50", "resnet50"), ("mobilenet_v2", "mobilenetv2"),
    ("squeezenet1_0", "squeezenet1_0"), ("squeezenet1_1", "squeezenet1_1")])
def test_describe_equals_zoo(tv_name, zoo_name):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    net = getattr(torchvision.models, tv_name)()  # random weights: no download
    model = mt.describe(net, torch.zeros(1, 3, 224, 224))
    zoo = mpq.Model.zoo(zoo_name)
    assert len(model) == len(zoo)
    for a, b in zip(model.layers, zoo.layers):
        assert a == b, (a["name"], {k: (a[k], b[k]) for k in a if a[k] != b[k]})
    assert model.totals() == zoo.totals()


class SmallCNN(nn.Module):
    """torchvision-style: conv-BN-ReLU stem, a depthwise-separable block, a classifier."""

    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 8, 3, padding=1, groups=8, bias=False), nn.BatchNorm2d(8), nn.ReLU(),
            nn.Conv2d(8, 16, 1, bias=False), nn.BatchNorm2d(16))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(x)), 1))


def _net(seed=0):
    torch.manual_seed(seed)
    net = SmallCNN()
    with torch.no_grad():  # non-trivial BN statistics
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
        net.fc.bias.zero_()  # predictions spread over the classes, not the bias's argmax
        net.fc.weight.mul_(4.0)
    return net.eval()


def _batches(n=4, seed=1):
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):  # images differing in mean, contrast and a ramp: varied predictions
        mean = torch.rand(16, 1, 1, 1, generator=g) * 2 - 1
        std = torch.rand(16, 1, 1, 1, generator=g) * 1.5 + 0.2
        ramp = torch.linspace(-1, 1, 28).view(1, 1, 1, 28) * (torch.rand(16, 1, 1, 1,
                                                                           generator=g) * 4 - 2)
        x = torch.randn(16, 1, 28, 28, generator=g) * std + mean + ramp
        out.append((x, torch.randint(0, 10, (16,), generator=g)))
    return out


def _ref_weight_fq(w, bits):
    """HAQ's per-kernel symmetric signed grid in plain numpy (float32 like the C kernels):
    s = max|w| / (2^(b-1) - 1), q = clip(rint(w * (1/s))), y = q * s; 1 bit = max|w| sign(w)."""
    out = np.empty_like(w)
    for c in range(w.shape[0]):
        b = int(bits[c])
        wc = w[c]
        if b == 32:
            out[c] = wc
            continue
        m = F(np.abs(wc).max())
        if b == 1:
            out[c] = np.sign(wc) * m
            continue
        qmax = 2 ** (b - 1) - 1
        s = F(m / F(qmax))
        q = np.clip(np.rint(wc * F(F(1) / s)), -qmax, qmax).astype(F)
        out[c] = (q * s).astype(F)
    return out


def test_describe_notes_batchnorm_relu_and_depthwise():
    model = mt.describe(_net(), torch.zeros(1, 1, 28, 28))
    assert model.layer_names() == ["features.0", "features.3", "features.6", "fc"]
    assert [l["has_batchnorm"] for l in model.layers] == [1, 1, 1, 0]
    assert model.layer("features.3")["groups"] == 8
    assert (model.layer("features.3")["in_h"], model.layer("features.6")["in_h"]) == (14, 14)
    assert [model.torch_info[n]["relu"] for n in model.layer_names()] == [True, True, False,
                                                                          False]
    assert model.torch_info["features.0"]["batchnorm"] == "features.1"
    with pytest.raises(mpq.InvalidArgumentError):
        mt.describe(nn.ReLU(), torch.zeros(1, 3))


@requires("mpq_quantizer_apply_layer")
def test_quantized_weights_bit_exact_and_restored():
    net = _net()
    model = mt.describe(net, torch.zeros(1, 1, 28, 28))
    rng = np.random.default_rng(3)
    kb = [rng.integers(1, 9, size=k) for k in model.kernel_counts()]
    kb[0][2] = 32
    policy = mpq.Policy.from_arrays(model, kb, [8, 4, 3, 6])
    before = {k: v.clone() for k, v in net.state_dict().items()}
    float_w = {n: net.get_submodule(n).weight.detach().numpy().copy()
               for n in model.layer_names()}
    with mt.quantized(net, policy, calibration=_batches()) as q:
        wmodel = model.clone()
        for n in model.layer_names():
            wmodel.set_weights(n, float_w[n])
        quant = mpq.Quantizer(wmodel)
        for i, n in enumerate(model.layer_names()):
            got = net.get_submodule(n).weight.detach().numpy()
            want = quant.apply_layer(policy, i).reshape(got.shape)
            assert np.array_equal(got, want), n  # the quantizer the runtime uses
            assert np.array_equal(got, _ref_weight_fq(float_w[n], kb[i])), n
        # The stem sees normalised input (negative values): signed grid; the depthwise and
        # pointwise convs see post-ReLU maps: unsigned; fc sees a pooled BN output: signed.
        assert q.signed == {"features.0": True, "features.3": False, "features.6": False,
                            "fc": True}
        assert q.ranges["features.3"][0] >= 0 > q.ranges["features.0"][0]
    after = net.state_dict()
    for k, v in before.items():
        assert v.dtype == after[k].dtype and torch.equal(v, after[k]), k
        assert v.numpy().tobytes() == after[k].numpy().tobytes(), k
    assert not net._forward_pre_hooks and not net.features[0]._forward_pre_hooks


def test_quantized_activation_grid_matches_c_kernels():
    net = _net()
    model = mt.describe(net, torch.zeros(1, 1, 28, 28))
    policy = mpq.Policy.uniform(model, 32, 4)
    data = _batches(2)
    seen = {}
    hook = net.features[3].register_forward_pre_hook(
        lambda m, inp: seen.__setitem__("x", inp[0].detach().numpy().copy()))
    try:
        with mt.quantized(net, policy, calibration=data) as q:
            inner = net.features[3].register_forward_pre_hook(
                lambda m, inp: seen.__setitem__("xq", inp[0].detach().numpy().copy()))
            with torch.no_grad():
                net(data[0][0])
            inner.remove()
            lo, hi = q.ranges["features.3"]
    finally:
        hook.remove()
    # Registered first, the outer hook saw the float input; the quantizing hook ran next.
    x = seen["x"]
    scale, zp = mpq.params_from_range(0.0, hi, 4, signed=False)
    assert lo >= 0 and zp == 0
    assert np.array_equal(seen["xq"], mpq.fake_quant(x, 4, scale, 0, signed=False))
    assert len(np.unique(seen["xq"])) <= 16  # 2^4 unsigned levels, none wasted on negatives
    assert np.array_equal(seen["xq"], np.clip(np.rint(x * F(F(1) / F(scale))), 0, 15) * F(scale))


@requires("mpq_net_forward", "mpq_dataset_create_memory")
def test_quantized_equals_builtin_runtime_bit_for_bit():
    """One fully connected layer on a 1x1 image: every logit is one product w_q * x_q (+ a zero
    bias), exact in oneDNN and in torch, so the runtime's fake-quant path (calibration, unsigned
    activation grid, per-kernel weights) and mpq.torch.quantized must agree bit for bit."""
    rng = np.random.default_rng(5)
    pixels = rng.integers(0, 256, size=(700, 1, 1, 1)).astype(np.uint8)
    labels = rng.integers(0, 4, size=700)
    ds = mpq.Dataset.from_arrays(pixels, labels, test_count=100, val_count=100)
    net = mpq.Net.create(1, 1, 1, 4, seed=11)
    net.add("fc", "fc", out_channels=4)
    net.calibrate(ds, batches=1000, method="minmax")  # every training image
    rt_model = net.to_model()
    w, b = rt_model.weights("fc")
    assert not b.any()

    class One(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(1, 4)

        def forward(self, x):
            return self.fc(torch.flatten(x, 1))

    tnet = One()
    with torch.no_grad():
        tnet.fc.weight.copy_(torch.from_numpy(w.reshape(4, 1)))
        tnet.fc.bias.copy_(torch.from_numpy(b))
    train_img, _ = ds.numpy("train")
    # The runtime's input scaling: pixel * (1.0f / 255.0f) in float.
    scale = lambda px: torch.from_numpy(px.astype(F) * F(F(1.0) / F(255.0)))  # noqa: E731
    calib = [scale(train_img)]
    test_img, _ = ds.numpy("test")
    x = scale(test_img)
    tmodel = mt.describe(tnet, x[:1])
    for wbits, abits in ([2, 3, 5, 8], 3), ([8, 8, 8, 8], 5), ([1, 4, 6, 2], 2):
        rt_policy = mpq.Policy.from_arrays(rt_model, [np.array(wbits)], [abits])
        net.set_policy(rt_policy)
        want = net.forward(x.numpy())
        policy = mpq.Policy.from_arrays(tmodel, [np.array(wbits)], [abits])
        with mt.quantized(tnet, policy, calibration=calib, calib_batches=None) as q, \
                torch.no_grad():
            got = tnet(x).numpy()
            assert q.signed == {"fc": False}
        assert got.tobytes() == want.tobytes(), (wbits, abits, np.abs(got - want).max())
        net.set_policy(None)
        floats = net.forward(x.numpy())
        assert not np.array_equal(floats, want)  # the policy changed the output (8-bit
        # activations would not: pixels / 255 lie on the unsigned 8-bit grid of [0, 1])
    assert np.array_equal(tnet.fc.weight.detach().numpy().reshape(-1), w.reshape(-1))


def test_restore_after_exception_and_finetune():
    net = _net()
    model = mt.describe(net, torch.zeros(1, 1, 28, 28))
    policy = mpq.Policy.uniform(model, 3, 4)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    with pytest.raises(RuntimeError, match="boom"):
        with mt.quantized(net, policy, calibration=_batches()):
            raise RuntimeError("boom")
    data = _batches(6)
    with mt.quantized(net, policy, calibration=data) as q:
        loss = q.finetune(data, batches=8)
        assert np.isfinite(loss)
        # The fine-tune moved the float masters; the module holds their quantized values.
        w = net.features[6].weight.detach().numpy()
        master = q._masters["features.6"].numpy()
        assert not np.array_equal(master, before["features.6.weight"].numpy())
        assert np.array_equal(w, _ref_weight_fq(master, [3] * 16))
    for k, v in before.items():
        assert torch.equal(v, net.state_dict()[k]), k
    assert not net.training


def test_quantized_errors():
    net = _net()
    model = mt.describe(net, torch.zeros(1, 1, 28, 28))
    with pytest.raises(mpq.InvalidArgumentError, match="calibration"):
        with mt.quantized(net, mpq.Policy.uniform(model, 4, 4)):
            pass
    with mt.quantized(net, mpq.Policy.uniform(model, 4, 32)):  # float activations: no ranges
        pass
    other = mpq.Model("other")
    other.add_fc("head", 16, 10)
    with pytest.raises(mpq.MismatchError, match="head"):
        mt.quantized(net, mpq.Policy.uniform(other, 4, 4))


def test_evaluator_and_search_with_progress(capsys):
    net = _net()
    val = _batches(3, seed=9)
    with torch.no_grad():  # labels the float net's predictions: float accuracy 1.0
        val = [(x, net(x).argmax(1)) for x, _ in val]
    model = mt.describe(net, torch.zeros(1, 1, 28, 28))
    ev = mt.evaluator(net, val, calibration=_batches(2))
    before = {k: v.clone() for k, v in net.state_dict().items()}
    acc8 = ev(mpq.Policy.uniform(model, 8, 8))
    acc2 = ev(mpq.Policy.uniform(model, 2, 2))
    assert mt.top1(net, val) == 1.0 and len(torch.cat([y for _, y in val]).unique()) >= 2
    assert acc8 > 0.8 and acc2 < acc8
    for k, v in before.items():
        assert torch.equal(v, net.state_dict()[k]), k
    hw = mpq.Hardware("bismo-edge")
    with mpq.Search(model, hw, ev, method="haq", budget="latency:0.6", episodes=4, warmup=2,
                    seed=1, first_last="free", progress=True) as s:
        best = s.run()
        assert best is not None and len(s) == 4
    err = capsys.readouterr().err
    lines = err.split("\r")
    assert "episode 4/4" in lines[-1] and "ETA" in lines[-1] and err.endswith("\n")
    assert "best acc" in lines[-1]
    assert ev.calls <= 2 + 1 + 4  # + the reference (all 8-bit) accuracy; cached repeats skip


def test_evaluator_finetune_runs():
    net = _net()
    model = mt.describe(net, torch.zeros(1, 1, 28, 28))
    data = _batches(3)
    ev = mt.evaluator(net, data, finetune=data, finetune_batches=2)
    before = {k: v.clone() for k, v in net.state_dict().items()}
    acc = ev(mpq.Policy.uniform(model, 4, 4))
    assert 0.0 <= acc <= 1.0
    for k, v in before.items():
        assert torch.equal(v, net.state_dict()[k]), k
    with pytest.raises(mpq.InvalidArgumentError, match="finetune"):
        mt.evaluator(net, data, finetune_batches=3)
