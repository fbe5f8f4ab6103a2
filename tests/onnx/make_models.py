"""ONNX models for the import/export tests, exported by Debian's PyTorch (torch.onnx.export).

    /usr/bin/python3 make_models.py OUTDIR [--train-batches N] [--only NAME ...]

fashion_cnn.onnx: the architecture of libmpq's built-in "fashion-cnn" (28x28x1, depthwise-
separable MobileNetV2-style blocks, two residual adds, ReLU6, global average pooling) trained
briefly and deterministically on Fashion-MNIST; resnet18.onnx, mobilenet_v2.onnx: torchvision
with random weights (seed 0). BatchNorm is kept (TrainingMode.PRESERVE on an eval() model,
no constant folding), so the exporter's Shape/Gather/Unsqueeze/Concat/Reshape constants reach
the importer. fashion_cnn_view.onnx flattens with x.view(x.size(0), -1) for that purpose.
"""

import argparse
import gzip
import os
import struct

import numpy as np
import torch
import torch.nn as nn

FASHION = "/usr/share/datasets/fashion-mnist"


def read_idx(path):
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    magic, = struct.unpack(">I", data[:4])
    rank = magic & 0xFF
    dims = struct.unpack(">" + "I" * rank, data[4:4 + 4 * rank])
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * rank).reshape(dims)


def fashion(split="train", directory=FASHION):
    prefix = "train" if split == "train" else "t10k"
    def find(stem):
        for suffix in ("", ".gz"):
            p = os.path.join(directory, stem + suffix)
            if os.path.exists(p):
                return p
        raise FileNotFoundError(stem)
    x = read_idx(find(prefix + "-images-idx3-ubyte"))
    y = read_idx(find(prefix + "-labels-idx1-ubyte"))
    return x, y


def conv_bn(cin, cout, k, s, groups=1, relu=True):
    layers = [nn.Conv2d(cin, cout, k, s, k // 2, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    if relu:
        layers.append(nn.ReLU6())
    return nn.Sequential(*layers)


class FashionCNN(nn.Module):
    """lib/runtime/net.c's "fashion-cnn", layer for layer."""

    def __init__(self, view_flatten=False):
        super().__init__()
        self.view_flatten = view_flatten
        self.stem = conv_bn(1, 32, 3, 1)
        self.b1 = nn.Sequential(conv_bn(32, 32, 3, 2, 32), conv_bn(32, 64, 1, 1))
        self.b2 = nn.Sequential(conv_bn(64, 64, 3, 1, 64), conv_bn(64, 64, 1, 1, relu=False))
        self.b3 = nn.Sequential(conv_bn(64, 64, 3, 2, 64), conv_bn(64, 128, 1, 1))
        self.b4 = nn.Sequential(conv_bn(128, 128, 3, 1, 128), conv_bn(128, 128, 1, 1, relu=False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(128, 10)

    def forward(self, x):
        x = self.b1(self.stem(x))
        x = x + self.b2(x)
        x = self.b3(x)
        x = x + self.b4(x)
        x = self.pool(x)
        x = x.view(x.size(0), -1) if self.view_flatten else torch.flatten(x, 1)
        return self.fc(x)


def train_fashion(batches, seed=0):
    torch.manual_seed(seed)
    x, y = fashion("train")
    x = torch.from_numpy(x[:55000].astype(np.float32) / 255.0).unsqueeze(1)
    y = torch.from_numpy(y[:55000].astype(np.int64))
    net = FashionCNN()
    opt = torch.optim.SGD(net.parameters(), lr=0.05, momentum=0.9, weight_decay=5e-4)
    g = torch.Generator().manual_seed(seed)
    perm = torch.randperm(len(x), generator=g)
    net.train()
    for b in range(batches):
        idx = perm[(b * 128) % len(x):(b * 128) % len(x) + 128]
        opt.zero_grad()
        loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
        loss.backward()
        opt.step()
    return net.eval()


def random_bn(net):
    """Random batch-norm statistics and affine parameters: with torchvision's initial ones
    (mean 0, variance 1, scale 1, shift 0) MobileNetV2's logits are ~1e-10 and compare
    trivially."""
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.BatchNorm2d):
                c = m.num_features
                m.weight.copy_(0.5 + torch.rand(c, generator=g))
                m.bias.copy_(0.1 * torch.randn(c, generator=g))
                m.running_mean.copy_(0.1 * torch.randn(c, generator=g))
                m.running_var.copy_(0.5 + torch.rand(c, generator=g))
    return net


def export(net, path, shape, batch=4):
    """Exports, and saves a batch of inputs in [0, 1] with torch's logits next to the model
    (PATH.input.npy, PATH.logits.npy) for the float comparison."""
    torch.onnx.export(net, torch.zeros(shape), path, opset_version=13, do_constant_folding=False,
                      training=torch.onnx.TrainingMode.PRESERVE, input_names=["input"],
                      output_names=["logits"])
    g = torch.Generator().manual_seed(1)
    x = torch.rand((batch,) + tuple(shape[1:]), generator=g)
    with torch.no_grad():
        y = net(x)
    np.save(path + ".input.npy", x.numpy())
    np.save(path + ".logits.npy", y.numpy())


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("outdir")
    ap.add_argument("--train-batches", type=int, default=200)
    ap.add_argument("--only", nargs="*", default=None)
    a = ap.parse_args()
    os.makedirs(a.outdir, exist_ok=True)
    torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
    want = lambda n: a.only is None or n in a.only  # noqa: E731
    if want("fashion_cnn"):
        net = train_fashion(a.train_batches)
        export(net, os.path.join(a.outdir, "fashion_cnn.onnx"), (1, 1, 28, 28))
        view = FashionCNN(view_flatten=True)
        view.load_state_dict(net.state_dict())
        export(view.eval(), os.path.join(a.outdir, "fashion_cnn_view.onnx"), (1, 1, 28, 28))
    import torchvision
    for name in ("resnet18", "mobilenet_v2", "resnet50"):
        if want(name) and (a.only is not None or name != "resnet50"):
            torch.manual_seed(0)
            net = random_bn(getattr(torchvision.models, name)()).eval()
            export(net, os.path.join(a.outdir, name + ".onnx"), (1, 3, 224, 224), batch=2)
            if name == "mobilenet_v2":
                # The runtime needs ~10 GB for MobileNetV2's 224x224 maps (see the guide): its
                # logits are compared at 96x96, the same weights.
                export(net, os.path.join(a.outdir, name + "_96.onnx"), (1, 3, 96, 96), batch=2)


if __name__ == "__main__":
    main()
