"""Benchmark: k-center greedy with O(N) memory (`select_nb.select.kcenter.kcenter_greedy`) against the full
N x N distance-matrix approach (`kcenter_matrix`, as DiverseEvol's authors do it).

Random vectors (timing does not depend on the values). Each measurement runs in a fresh process, so
peak memory (CPU: peak RSS; CUDA: peak allocated) is the method's own. The baseline runs at the
largest N whose N x N fp32 matrix fits the memory budget (`--baseline-gib`); ours runs there too,
for ratios at the same N and k, and at the full N.

    .venv/bin/python bench/kcenter.py                       # N=50,000 x 384, k=5,000, baseline budget 6 GiB
    .venv/bin/python bench/kcenter.py --n 20000 --k 2000     # smaller
"""
import argparse, json, math, multiprocessing as mp, os, resource, time

def _rss():
    with open('/proc/self/statm') as f: return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')

def _run(method, n, d, k, device, q):
    import torch
    from select_nb.select.kcenter import kcenter_greedy, kcenter_matrix
    torch.manual_seed(0)
    x = torch.randn(n, d, device=device)
    cuda = torch.device(device).type == 'cuda'
    if cuda: torch.cuda.synchronize(); torch.cuda.reset_peak_memory_stats(); base = torch.cuda.memory_allocated()
    else: base = _rss()
    t0 = time.perf_counter()
    picks = kcenter_greedy(x, k, seed=0, device=device).picks if method == 'ours' else kcenter_matrix(x, k, seed=0, device=device)
    if cuda: torch.cuda.synchronize()
    sec = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() - base if cuda else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
    q.put({'method': method, 'n': n, 'k': k, 'seconds': sec, 'peak_bytes': peak, 'picks_head': picks[:50], 'picks_hash': hash(tuple(picks))})

def measure(method, n, d, k, device):
    q = mp.get_context('spawn').Queue()
    p = mp.get_context('spawn').Process(target=_run, args=(method, n, d, k, device, q)); p.start()
    out = q.get(); p.join()
    return out

def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n', type=int, default=50_000); ap.add_argument('--d', type=int, default=384)
    ap.add_argument('--k', type=int, default=5_000); ap.add_argument('--baseline-gib', type=float, default=6.0)
    ap.add_argument('--device', default=None); a = ap.parse_args()
    import torch
    dev = a.device or ('cuda' if torch.cuda.is_available() else 'cpu')
    nb = min(a.n, int(math.sqrt(a.baseline_gib * 2**30 / 4)) // 1000 * 1000)  # largest N (in thousands) whose N x N fp32 matrix fits
    print(f"device {dev}, torch threads {torch.get_num_threads()}, D={a.d}, k={a.k}; baseline N={nb:,} "
          f"(its matrix: {nb*nb*4/2**30:.1f} GiB; at N={a.n:,} it would be {a.n*a.n*4/2**30:.1f} GiB)", flush=True)
    rows = []
    for method, n in [('matrix', nb), ('ours', nb)] + ([('ours', a.n)] if nb != a.n else []):
        r = measure(method, n, a.d, a.k, dev); rows.append(r)
        print(f"  {r['method']:>6}  N={r['n']:>6,}  k={r['k']:,}  {r['seconds']:8.2f} s  peak {r['peak_bytes']/2**20:9.1f} MiB", flush=True)
    m, o = rows[0], rows[1]
    print(f"at N={nb:,}: baseline / ours — time {m['seconds']/o['seconds']:.2f}x, peak memory {m['peak_bytes']/max(o['peak_bytes'], 1):.1f}x; "
          f"same picks: {m['picks_hash'] == o['picks_hash']} (first 50 equal: {m['picks_head'] == o['picks_head']})")
    print(json.dumps([{k: v for k, v in r.items() if not k.startswith('picks')} for r in rows]))

if __name__ == '__main__': main()
