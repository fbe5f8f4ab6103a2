#!/usr/bin/python3
"""Reference per-layer costs from the published BitFusion simulator (hsharma35/bitfusion).

Usage: gen_reference.py BITFUSION_CHECKOUT LAYERS.csv > OUT.csv

Runs the simulator's own search (bitfusion/src/optimizer/optimizer.py: _optimize_for_order over
every loop order, the cross-order pick of optimize_for_order, then get_stats_fast on the winner)
for each layer of LAYERS.csv with the bf_e_conf.ini accelerator. Differences from calling
Simulator.get_conv_cycles, none of which changes a number:
- Python 3: optimizer.py imports loop_stack, which imports a Python-2-only pipeline.py; only
  get_loop_instructions needs it and its result is never used for the stats, so it is stubbed.
- no multiprocessing Pool (orders are run one after another in the same set() order);
- the energy constants are computed here from the same CSV rows Simulator.get_energy_cost reads
  (sram/cacti_sweep.csv for the three buffers, results/systolic_array_synth.csv for the core,
  4x4 scaled by N*M/16 when N x M is absent) with the csv module instead of pandas;
- Stats.get_energy(energy_cost) gives the energy (nJ) exactly as the optimizer ranks it.
"""
import configparser
import csv
import sys
import types
from itertools import permutations

root = sys.argv[1]
sys.path.insert(0, root)
stub = types.ModuleType('bitfusion.src.simulator.loop_stack')
stub.LoopStack = object
sys.modules['bitfusion.src.simulator.loop_stack'] = stub
from bitfusion.src.optimizer import optimizer as opt  # noqa: E402
from bitfusion.src.simulator.accelerator import Accelerator  # noqa: E402
from bitfusion.src.utils.utils import ceil_a_by_b  # noqa: E402


class Energy:
    pass


def energy_costs(N, M, pmax, pmin, sram):
    rows = list(csv.DictReader(open(root + '/bitfusion/sram/cacti_sweep.csv')))

    def cacti(size_bytes, block, port):
        hit = [r for r in rows if float(r['size (bytes)']) == size_bytes and
               float(r['block size (bytes)']) == block and int(r['read-write port']) == port]
        assert len({(r['read_energy_nJ'], r['write_energy_nJ']) for r in hit}) == 1, hit
        return float(hit[0]['read_energy_nJ']), float(hit[0]['write_energy_nJ'])

    e = Energy()
    word = pmax * pmax / pmin
    for name, banks, bits, port in (('wbuf', N * M, word, 0), ('ibuf', N, word, 0),
                                    ('obuf', M, 32, 1)):
        key = {'wbuf': 'wgt', 'ibuf': 'act', 'obuf': 'out'}[name]
        size = sram[key] * 8
        bank_size = ceil_a_by_b(size, banks * bits) * bits
        rd, wr = cacti(bank_size / 8., bits / 8., port)
        setattr(e, name + '_read_energy', rd / bits)
        setattr(e, name + '_write_energy', wr / bits)
    synth = list(csv.DictReader(open(root + '/results/systolic_array_synth.csv')))

    def core(n, m):
        return [r for r in synth if int(r['N']) == n and int(r['M']) == m and
                int(r['Max Precision (bits)']) == pmax and int(r['Min Precision (bits)']) == pmin]
    hit = core(N, M)
    if hit:
        e.core_dynamic_energy = float(hit[0]['Dynamic Power (nW)']) / float(hit[0]['Frequency'])
    else:
        hit = core(4, 4)
        power = float(hit[0]['Dynamic Power (nW)']) * (N * M) / 16.
        e.core_dynamic_energy = power / float(hit[0]['Frequency'])
    return e


def accelerator(conf):
    c = configparser.ConfigParser()
    c.read(conf)
    sram = {'act': c.getint('accelerator', 'Act_SRAM'), 'wgt': c.getint('accelerator', 'Wgt_SRAM'),
            'out': c.getint('accelerator', 'Out_SRAM')}
    N, M = c.getint('accelerator', 'a'), c.getint('accelerator', 'c')
    pmax, pmin = c.getint('accelerator', 'high_prec'), c.getint('accelerator', 'low_prec')
    acc = Accelerator(N, M, pmax, pmin, sram, c.getint('system', 'if_width'),
                      c.getint('accelerator', 'frequency'))
    return acc, energy_costs(N, M, pmax, pmin, sram)


def search(params):
    """optimize_for_order without the process pool, then get_stats_fast on the winner."""
    loops = ['B/b', 'OW/ow', 'OH/oh', 'IC/ic', 'OC/oc']
    best = None
    for order in set(permutations(loops)):
        tiling, order_type, cycles, energy = opt._optimize_for_order(params, order)
        if cycles is None:
            continue
        if best is None or best[2] > cycles or (best[2] == cycles and best[3] > energy):
            best = (tiling, order_type, cycles, energy)
    if best is None:
        return None
    return opt.get_stats_fast(params, best[0], best[1]), best


def main():
    acc, ecost = accelerator(root + '/bf_e_conf.ini')
    out = csv.writer(sys.stdout, lineterminator='\n')
    out.writerow(['name', 'K', 'O', 'S', 'IC', 'OC', 'B', 'iprec', 'wprec', 'im2col', 'cycles',
                  'stall_cycles', 'wbuf_read', 'wbuf_write', 'ibuf_read', 'ibuf_write',
                  'obuf_read', 'obuf_write', 'dram_read', 'dram_write', 'energy_nJ'])
    for r in csv.DictReader(open(sys.argv[2])):
        K, O, S, IC, OC, B = (int(r[k]) for k in ('K', 'O', 'S', 'IC', 'OC', 'B'))
        ip, wp, im2col = int(r['iprec']), int(r['wprec']), bool(int(r['im2col']))
        params = (acc, K, O, S, IC, OC, B, ip, wp, im2col, ecost)
        res = search(params)
        if res is None:
            out.writerow([r['name'], K, O, S, IC, OC, B, ip, wp, int(im2col)] + ['untileable'] * 11)
            continue
        s = res[0]
        out.writerow([r['name'], K, O, S, IC, OC, B, ip, wp, int(im2col), s.total_cycles,
                      s.mem_stall_cycles, s.reads['wgt'], s.writes['wgt'], s.reads['act'],
                      s.writes['act'], s.reads['out'], s.writes['out'], s.reads['dram'],
                      s.writes['dram'], repr(s.get_energy(ecost))])
        sys.stdout.flush()


if __name__ == '__main__':
    main()
