#!/usr/bin/python3
"""Mixed-precision search for a PyTorch CNN on Fashion-MNIST with libmpq.

1. Trains a small CNN (two conv layers, two fully connected) on Fashion-MNIST, read directly
   from the IDX files of Debian's dataset-fashion-mnist package.
2. Describes the same four layers to libmpq (``mpq.Model``) and attaches the trained weights.
3. Runs a HAQ search on the BISMO edge cost model under a latency budget. The evaluator is a
   Python function: libmpq's quantizer fake-quantizes every kernel (output channel) at the bits
   the policy gives it, the evaluator writes those weights into the torch model, fake-quantizes
   each layer's input activations at the policy's activation bits (zero-copy on the tensors'
   numpy views), and measures the validation accuracy.
4. Prints the chosen policy's test accuracy and hardware costs, and saves it as JSON.

Runs in a few minutes on 2 cores (``--quick`` for a smoke test in seconds):

    MPQ_LIBRARY=build/libmpq.so.0.2 PYTHONPATH=bindings/python \\
        /usr/bin/python3 examples/python/torch_fashion.py
"""

import argparse
import gzip
import pathlib
import sys
import time

import numpy as np
import torch
from torch import nn

HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent.parent / "bindings" / "python"))  # run from a checkout

import mpq  # noqa: E402

DATA_DIR = "/usr/share/datasets/fashion-mnist"
CLASSES = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
           "Bag", "Ankle boot"]


# ---- data ------------------------------------------------------------------------------------

def load_idx(path):
    """Reads an IDX file (optionally gzip-compressed) into a numpy array."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    if raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise ValueError("%s: not an unsigned-byte IDX file" % path)
    ndim = raw[3]
    dims = [int.from_bytes(raw[4 + 4 * i:8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(raw, dtype=np.uint8, offset=4 + 4 * ndim).reshape(dims)


def load_fashion(data_dir=DATA_DIR):
    """(train_x, train_y, test_x, test_y): images as float32 [n,1,28,28] normalised."""
    d = pathlib.Path(data_dir)
    out = []
    for split in ("train", "t10k"):
        x = load_idx(d / ("%s-images-idx3-ubyte.gz" % split)).astype(np.float32)
        y = load_idx(d / ("%s-labels-idx1-ubyte.gz" % split)).astype(np.int64)
        x = ((x / 255.0 - 0.2860) / 0.3530).astype(np.float32)[:, None, :, :]
        out += [torch.from_numpy(x), torch.from_numpy(y)]
    return tuple(out)


# ---- the network -----------------------------------------------------------------------------

class FashionCNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(1, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 32, 3, padding=1)
        self.fc1 = nn.Linear(32 * 7 * 7, 128)
        self.fc2 = nn.Linear(128, 10)
        self.pool = nn.MaxPool2d(2)

    def forward(self, x):
        x = self.pool(torch.relu(self.conv1(x)))
        x = self.pool(torch.relu(self.conv2(x)))
        x = torch.relu(self.fc1(x.flatten(1)))
        return self.fc2(x)

    def quantizable(self):
        """The layers in libmpq's order."""
        return [self.conv1, self.conv2, self.fc1, self.fc2]


def train(net, x, y, epochs=2, batch=128, lr=2e-3, seed=0, log=print):
    torch.manual_seed(seed)
    opt = torch.optim.Adam(net.parameters(), lr=lr)
    n = x.shape[0]
    for epoch in range(epochs):
        net.train()
        perm = torch.randperm(n)
        t0, total = time.time(), 0.0
        for i in range(0, n, batch):
            idx = perm[i:i + batch]
            opt.zero_grad()
            loss = nn.functional.cross_entropy(net(x[idx]), y[idx])
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        log("epoch %d: loss %.4f (%.1fs)" % (epoch + 1, total / n, time.time() - t0))
    net.eval()


@torch.no_grad()
def accuracy(net, x, y, batch=1000):
    correct = 0
    for i in range(0, x.shape[0], batch):
        correct += (net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum().item()
    return correct / x.shape[0]


# ---- libmpq side -----------------------------------------------------------------------------

def describe(net, name="fashion_cnn"):
    """The libmpq model of the network's quantizable layers, with the trained weights."""
    m = mpq.Model(name)
    m.add_conv("conv1", 1, 16, 3, pad=1, in_hw=(28, 28), bias=True)
    m.add_conv("conv2", 16, 32, 3, pad=1, in_hw=(14, 14), bias=True)
    m.add_fc("fc1", 32 * 7 * 7, 128)
    m.add_fc("fc2", 128, 10)
    for i, layer in enumerate(net.quantizable()):
        m.set_weights(i, layer.weight.detach().numpy(), layer.bias.detach().numpy())
    return m


class QuantizedEvaluator:
    """policy -> validation accuracy, with libmpq's kernel-wise fake-quantized weights written
    into the torch model and per-layer activation fake-quantization on the layers' inputs."""

    def __init__(self, net, model, x_val, y_val):
        self.net, self.model = net, model
        self.x_val, self.y_val = x_val, y_val
        self.layers = net.quantizable()
        self.float_weights = [layer.weight.detach().clone() for layer in self.layers]
        self.quantizer = mpq.Quantizer(model)
        self.act_bits = [32] * len(self.layers)
        for i, layer in enumerate(self.layers):
            layer.register_forward_pre_hook(self._act_hook(i))
        self.calls = 0

    def _act_hook(self, i):
        def hook(module, inputs):
            bits = self.act_bits[i]
            if bits >= 32:
                return None
            x = inputs[0].contiguous()
            if i == 0:
                x = x.clone()  # the network input is a view of the dataset: keep that intact
            # The tensor's numpy view shares its memory: libmpq quantizes it in place.
            a = x.numpy()
            mpq.fake_quant_tensor(a, bits, out=a, signed=(i == 0))
            return (x,)
        return hook

    def load(self, policy):
        """Writes the policy's fake-quantized weights into the torch layers."""
        self.quantizer.apply(policy)
        with torch.no_grad():
            for i, layer in enumerate(self.layers):
                w = self.quantizer.weights(i).reshape(tuple(layer.weight.shape))
                layer.weight.copy_(torch.from_numpy(w))
        self.act_bits = [int(b) for b in policy.act_bits]

    def restore(self):
        with torch.no_grad():
            for layer, w in zip(self.layers, self.float_weights):
                layer.weight.copy_(w)
        self.act_bits = [32] * len(self.layers)

    def __call__(self, policy):
        self.calls += 1
        self.load(policy)
        try:
            return accuracy(self.net, self.x_val, self.y_val)
        finally:
            self.restore()


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--data", default=DATA_DIR)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--episodes", type=int, default=80)
    ap.add_argument("--method", default="haq")
    ap.add_argument("--hw", default="bismo-edge")
    ap.add_argument("--budget", default="latency:0.5",
                    help="resource:fraction of the all-8-bit cost (default latency:0.5)")
    ap.add_argument("--val", type=int, default=2000, help="validation images per evaluation")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="fashion_policy.json")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: 6000 training images, 1 epoch, 12 episodes")
    args = ap.parse_args(argv)
    if args.quick:
        args.epochs, args.episodes, args.val = 1, 12, 500

    torch.set_num_threads(args.threads)
    t_start = time.time()
    print("libmpq %s (%s)" % (mpq.version(), mpq.library_path))
    x_train, y_train, x_test, y_test = load_fashion(args.data)
    if args.quick:
        x_train, y_train = x_train[:6000], y_train[:6000]
    # Validation set for the search: held out from the training set's end.
    x_val, y_val = x_train[-args.val:], y_train[-args.val:]
    x_fit, y_fit = x_train[:-args.val], y_train[:-args.val]

    net = FashionCNN()
    train(net, x_fit, y_fit, epochs=args.epochs)
    float_acc = accuracy(net, x_test, y_test)
    print("float32 test accuracy: %.4f" % float_acc)

    model = describe(net)
    hw = mpq.Hardware(args.hw)
    evaluator = QuantizedEvaluator(net, model, x_val, y_val)
    eight = mpq.Policy.uniform(model, 8, 8)
    evaluator.load(eight)
    acc8 = accuracy(net, x_test, y_test)
    evaluator.restore()
    print("all 8-bit test accuracy: %.4f" % acc8)

    def progress(info):
        r = info["record"]
        if info["episode"] % 10 == 0 or info["episode"] + 1 == info["episodes"]:
            print("episode %3d: acc %.4f latency x%.3f size x%.3f reward %+.3f best acc %.4f"
                  % (info["episode"], r["accuracy"], r["latency_ratio"], r["size_ratio"],
                     r["reward"], info["best_accuracy"]))

    search = mpq.Search(model, hw, evaluator, method=args.method, budget=args.budget,
                        episodes=args.episodes, seed=args.seed, first_last="free",
                        progress=progress)
    try:
        best = search.run()
    except KeyboardInterrupt:
        print("interrupted after %d episodes; reporting the best policy so far" % len(search))
        best = search.best_policy
    if best is None:
        print("no feasible policy found")
        return 1

    evaluator.load(best)
    test_acc = accuracy(net, x_test, y_test)
    evaluator.restore()
    costs = hw.evaluate(model, best)
    best.set_figures(accuracy=test_acc, latency=costs["total"]["latency_s"],
                     energy=costs["total"]["energy_j"], size_bytes=costs["total"]["size_bytes"])
    best.save(args.out)

    print("\nchosen policy (%s, budget %s on %s), saved to %s"
          % (args.method, args.budget, hw.name, args.out))
    print("%-6s %-11s %-9s %12s %12s" % ("layer", "weight bits", "act bits", "latency us",
                                         "size bytes"))
    for row in costs["layers"]:
        wb = "%d-%d (%.2f)" % (row["weight_bits_min"], row["weight_bits_max"],
                               row["avg_weight_bits"])
        print("%-6s %-11s %-9d %12.2f %12.0f" % (row["name"], wb, row["act_bits"],
                                                 row["latency_s"] * 1e6, row["size_bytes"]))
    t, q = costs["total"], costs["ratio"]
    print("test accuracy: %.4f (float %.4f, all 8-bit %.4f)" % (test_acc, float_acc, acc8))
    print("latency %.2f us (x%.3f of 8-bit), energy %.3f uJ (x%.3f), size %.0f bytes (x%.3f)"
          % (t["latency_s"] * 1e6, q["latency_s"], t["energy_j"] * 1e6, q["energy_j"],
             t["size_bytes"], q["size_bytes"]))
    print("evaluations: %d for %d episodes; total time %.1fs"
          % (evaluator.calls, len(search), time.time() - t_start))
    return 0


if __name__ == "__main__":
    sys.exit(main())
