#!/usr/bin/python3
"""Your own PyTorch CNN on Fashion-MNIST, searched with HAQ and AutoQ through mpq.torch.

    MPQ_LIBRARY=build/libmpq.so.0.2 PYTHONPATH=bindings/python \\
        /usr/bin/python3 examples/python/torch_search.py [--quick]

--quick (3000 training images, 4 episodes each) is a smoke run: about 1.5 minutes on a busy
2-core machine.
"""
import argparse
import pathlib
import sys

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "bindings" / "python"))
import mpq  # noqa: E402
import mpq.torch  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true", help="a smoke run in seconds")
args = ap.parse_args()
torch.manual_seed(0)
torch.set_num_threads(2)


def conv_bn(cin, cout, stride=1, groups=1, k=3):  # torchvision's Conv2dNormActivation
    return nn.Sequential(nn.Conv2d(cin, cout, k, stride, k // 2, groups=groups, bias=False),
                         nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


net = nn.Sequential(conv_bn(1, 16), conv_bn(16, 16, 2, groups=16), conv_bn(16, 32, k=1),
                    conv_bn(32, 32, 2, groups=32), conv_bn(32, 64, k=1),
                    nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(64, 10))


def loader(split, n, shuffle=False):  # libmpq reads Debian's Fashion-MNIST IDX files
    x, y = ds.numpy(split)
    x = torch.from_numpy(x[:n]).float().div_(255.0)
    return DataLoader(TensorDataset(x, torch.from_numpy(y[:n])), 128, shuffle=shuffle)


ds = mpq.Dataset()
train = loader("train", 3000 if args.quick else None, shuffle=True)
val = loader("val", 500 if args.quick else 2000)
opt = torch.optim.Adam(net.parameters(), lr=3e-3)
for epoch in range(1 if args.quick else 2):
    net.train()
    for x, y in train:
        opt.zero_grad()
        nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
    with torch.no_grad():  # BN statistics of the final weights (they lag in short runs)
        for i, (x, _) in zip(range(10), train):
            net(x)
    print("epoch %d: val top-1 %.4f" % (epoch, mpq.torch.top1(net, val)))

model = mpq.torch.describe(net, torch.zeros(1, 1, 28, 28), name="fashion_torch")
hw = mpq.Hardware("bismo-edge")
ev = mpq.torch.evaluator(net, val, calibration=train)  # ranges from 4 training batches
episodes = 4 if args.quick else 40
for method in ("haq", "autoq"):
    # warmup: HAQ plays 20 random episodes before its agent acts; shortened to fit the run.
    search = mpq.Search(model, hw, ev, method=method, budget="latency:0.5", seed=1,
                        episodes=episodes, warmup=episodes // 4, first_last="free",
                        progress=True)
    best = search.run()
    cost = hw.evaluate(model, best)["ratio"]
    print("%s: val top-1 %.4f at %.2f x the all-8-bit latency, avg %.2f weight bits, "
          "act bits %s" % (method, search.best_record["accuracy"], cost["latency_s"],
                           best.avg_weight_bits, list(best.act_bits)))

test = loader("test", 1000 if args.quick else None)
with mpq.torch.quantized(net, best, calibration=train):
    print("autoq policy, test top-1 %.4f" % mpq.torch.top1(net, test))
print("float model, test top-1 %.4f" % mpq.torch.top1(net, test))
