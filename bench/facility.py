"""Superfiltering.D's facility location: the dense lazy greedy against the sparse k-NN graph, in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/facility.py [--n-dense 20000] [--n-large 200000] [--knn 32] [--pick 0.02]
    HF_HUB_OFFLINE=1 .venv/bin/python bench/facility.py --real [--knns 8 32 128 512] [--pick 0.02]

Random unit vectors of dimension 384 (MiniLM's). At `--n-dense` both ways run and their picks are compared; at
`--n-large` only the sparse graph fits (the dense matrix would take N^2 x 4 bytes). Each way runs in a fresh
process, so its peak resident memory is its own.

`--real` asks how many neighbours real embeddings need: the shared 9k Alpaca sample embedded as Superfiltering.D
embeds it (MiniLM, `record_texts`), dense picks against the picks of each k-NN graph, compared by shared picks and
by the facility-location objective sum_i max_{j in S} sim(i, j) on the full matrix (sparse picks / dense picks)."""
import argparse, json, resource, subprocess, sys, time
import torch

p = argparse.ArgumentParser()
p.add_argument('--n-dense', type=int, default=20000); p.add_argument('--n-large', type=int, default=200000)
p.add_argument('--knn', type=int, default=32); p.add_argument('--pick', type=float, default=0.02); p.add_argument('--dim', type=int, default=384)
p.add_argument('--way', choices=['dense', 'sparse']); p.add_argument('--n', type=int)
p.add_argument('--real', action='store_true'); p.add_argument('--knns', type=int, nargs='+', default=[8, 32, 128, 512])
a = p.parse_args()

def one(way, n):
    "Run one way in this process: vectors, similarity, greedy; print a JSON line."
    from select_nb.select.facility import facility_location, knn_graph, similarity
    e = torch.nn.functional.normalize(torch.randn(n, a.dim, generator=torch.Generator().manual_seed(0)), dim=1)
    t0 = time.perf_counter(); sim = knn_graph(e, a.knn) if way == 'sparse' else similarity(e); t1 = time.perf_counter()
    picks = facility_location(sim, int(n * a.pick)); t2 = time.perf_counter()
    print(json.dumps({'build_s': t1 - t0, 'greedy_s': t2 - t1, 'peak_mib': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 'picks': picks}))

def run(way, n):
    out = subprocess.run([sys.executable, __file__, '--way', way, '--n', str(n), '--knn', str(a.knn), '--pick', str(a.pick), '--dim', str(a.dim)],
                         capture_output=True, text=True, check=True).stdout
    r = json.loads(out.strip().splitlines()[-1])
    print(f"{way:6} N={n:>7,}: similarity {r['build_s']:7.1f} s, greedy {r['greedy_s']:6.1f} s ({len(r['picks'])} picks), peak RSS {r['peak_mib']:7.0f} MiB", flush=True)
    return r

def real():
    "Dense against k-NN facility location on real embeddings: shared picks and the objective ratio, per k."
    from select_nb.core.env import data_dir
    from select_nb.data.load import load
    from select_nb.engine.embed import embed
    from select_nb.select.facility import facility_location, knn_graph, similarity
    t = load(data_dir()/'alpaca/alpaca_random_9k.json')
    e = embed(t, progress=False).double()   # MiniLM over `record_texts`, cached on disk
    sim, k = similarity(e), int(len(t) * a.pick)
    f = lambda picks: sim[:, picks].max(dim=1).values.sum().item()
    t0 = time.perf_counter(); dense = facility_location(sim, k); td = time.perf_counter() - t0
    print(f"N={len(t):,} real MiniLM embeddings, {k} picks; dense greedy {td:.1f} s, objective {f(dense):.1f}", flush=True)
    rand = [f(torch.randperm(len(t), generator=torch.Generator().manual_seed(s))[:k]) / f(dense) for s in range(5)]
    print(f"  random picks (5 seeds): objective {min(rand):.4f} to {max(rand):.4f} of the dense picks'", flush=True)
    for nn in a.knns:
        t0 = time.perf_counter(); s = facility_location(knn_graph(e, nn), k); ts = time.perf_counter() - t0
        print(f"  {nn:>4}-NN graph: {ts:6.1f} s, {len(set(s) & set(dense)) / k:6.1%} of the dense picks, "
              f"objective {f(s) / f(dense):.4f} of the dense picks'", flush=True)

if a.way: one(a.way, a.n); sys.exit()
if a.real: real(); sys.exit()
s, d = run('sparse', a.n_dense), run('dense', a.n_dense)
ts, td = s['build_s'] + s['greedy_s'], d['build_s'] + d['greedy_s']
print(f"N={a.n_dense:,}: sparse {a.knn}-NN / dense: time {ts / td:.3f}x, memory {s['peak_mib'] / d['peak_mib']:.3f}x; "
      f"{len(set(s['picks']) & set(d['picks'])) / len(d['picks']):.1%} of the picks shared")
big = run('sparse', a.n_large)
print(f"N={a.n_large:,}: dense would need {a.n_large ** 2 * 4 / 2**30:.0f} GiB for the float32 matrix alone")
