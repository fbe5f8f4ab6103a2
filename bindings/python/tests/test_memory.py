"""10,000 create/destroy cycles of every handle type without memory growth."""

import gc

import numpy as np

import mpq
from conftest import requires, tiny_model

pytestmark = requires("mpq_fq_tensor", "mpq_search_create")


def rss_kib():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def cycle(hw, i):
    m = tiny_model("m%d" % (i % 7))
    p = mpq.Policy.uniform(m, 2 + i % 7, 8)
    q = mpq.Policy.from_json(m, p.to_json())
    with mpq.Hardware("bismo-edge") as h2:
        h2.cost(m, q)
    hw.layer_table(m, p)
    x = np.full(64, 0.5, np.float32)
    mpq.fake_quant_tensor(x, 4)
    r = mpq.Rng(i)
    s = mpq.Search(m, hw, lambda pol: 0.5)
    if i % 2:  # alternate explicit close and garbage collection
        for h in (s, q, p, m, r):
            h.close()


def test_create_destroy_cycles_do_not_grow():
    hw = mpq.Hardware("bismo-edge")
    for i in range(1000):  # warm-up: allocator pools, numpy caches, ctypes thunks
        cycle(hw, i)
    gc.collect()
    before = rss_kib()
    for i in range(10000):
        cycle(hw, i)
    gc.collect()
    grown = rss_kib() - before
    # One leaked model+policy+search per cycle would be well over 10 MB.
    assert grown < 2048, "RSS grew by %d KiB over 10,000 cycles" % grown
