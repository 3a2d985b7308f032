"""`select-nb score` at scale: peak memory and wall time at N records, with a tiny random model saved to a directory.

    HF_HUB_OFFLINE=1 nice -n 19 .venv/bin/python bench/stream.py [--sizes 100000 1000000] [--in-memory 100000] [--work DIR]

Real Alpaca texts (the shared 9k sample), each record made unique by a numbered suffix on its instruction, written
as JSON Lines. Each size runs `select-nb score` in a fresh process with a fresh score cache; its peak resident
memory comes from `wait4`. `--in-memory N` also runs the path `select-nb score` took before streaming (`load` the
whole table, then `score` it) at N records, as the baseline. The forward pass alone (the same model on the same
kind of sequences, batches built in advance) gives the model's own speed, beside which the pipeline's tokens/s
tell what the pipeline costs. Results go to WORK/results.json; a size already there is not rerun."""
import argparse, json, os, subprocess, sys, time
from pathlib import Path

p = argparse.ArgumentParser()
p.add_argument('--sizes', type=int, nargs='+', default=[100_000, 1_000_000])
p.add_argument('--in-memory', type=int, nargs='*', default=[100_000], help="sizes to run the in-memory path at too")
p.add_argument('--work', default='/tmp/select_nb_bench_stream'); p.add_argument('--batch-tokens', type=int, default=16384)
p.add_argument('--chunk-size', type=int, default=10_000)
a = p.parse_args()
work = Path(a.work); work.mkdir(parents=True, exist_ok=True)
ROOT = Path(__file__).resolve().parent.parent

def data(n):
    "N unique Alpaca records as JSON Lines (the 9k sample repeated, instruction suffixed with its copy number)."
    path = work/f'alpaca-{n}.jsonl'
    if path.exists(): return path
    from select_nb.data.formats import read_rows
    from select_nb.core.env import data_dir
    base = [r for r in read_rows(data_dir()/'alpaca/alpaca_random_9k.json') if r['output'].strip()]
    with open(work/'.tmp.jsonl', 'w') as f:
        for i in range(n):
            r = base[i % len(base)]
            f.write(json.dumps({**r, 'instruction': f"{r['instruction']} (#{i // len(base)})"}) + '\n')
    os.replace(work/'.tmp.jsonl', path); return path

def model():
    "The tiny random Llama of the tests (2 layers, hidden 32, byte-level BPE of 300 tokens), saved to a directory."
    path = work/'tiny'
    if not (path/'config.json').exists():
        from select_nb.models.tiny import tiny_lm
        lm = tiny_lm(); lm.model.save_pretrained(path); lm.tokenizer.save_pretrained(path)
    return path

IN_MEMORY = """
import sys, time
from select_nb.data.load import load
from select_nb.run.executors import score
t = load(sys.argv[1]); s = score(t, model=sys.argv[2], dtype='fp32', batch_tokens=int(sys.argv[4]), progress=False)
s.to_parquet(sys.argv[3], index=False)
"""

def run(n, way):
    "Run one size one way in a fresh process; wall time, peak RSS (wait4) and tokens/s."
    out, cache = work/f'{way}-{n}.parquet', work/f'cache-{way}-{n}'
    subprocess.run(['rm', '-rf', str(cache), str(out), str(out) + '.parts'], check=True)
    env = {**os.environ, 'SELECT_NB_CACHE': str(cache), 'HF_HUB_OFFLINE': '1', 'PYTHONPATH': str(ROOT)}
    cmd = ([sys.executable, '-c', 'from select_nb.cli import main; main()', 'score', '--data', str(data(n)), '--model', str(model()), '--dtype', 'fp32',
            '--out', str(out), '--batch-tokens', str(a.batch_tokens), '--chunk-size', str(a.chunk_size)] if way == 'stream' else
           [sys.executable, '-c', IN_MEMORY, str(data(n)), str(model()), str(out), str(a.batch_tokens)])
    t0 = time.time(); proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    _, status, use = os.wait4(proc.pid, 0); wall = time.time() - t0
    if status: sys.exit(f"{way} N={n} failed ({status}): {proc.stdout.read()[-2000:]}")
    import pandas as pd
    s = pd.read_parquet(out, columns=['n_prompt', 'n_response', 'nll_cond'])
    ok = s[s.nll_cond.notna()]; tokens = int((ok.n_prompt + 2 * ok.n_response + 1).sum())
    return {'way': way, 'n': n, 'wall_s': round(wall, 1), 'peak_rss_mib': round(use.ru_maxrss / 1024), 'records_s': round(n / wall, 1),
            'tokens': tokens, 'tokens_s': round(tokens / wall)}

def forward_speed(n=1000):
    "Tokens/s of the model's forward pass alone: the engine's batches of n records' sequences, built before timing."
    from select_nb.data.load import load
    from select_nb.models.lm import load_lm, start_of
    from select_nb.engine.encode import encode, sequences, make_batches
    from select_nb.engine.nll import pass_nll
    lm = load_lm(str(model()), dtype='fp32')
    seqs = sequences(encode(load(data(n)), lm.tokenizer), start_of(lm)[1])
    batches = [seqs.iloc[b] for b in make_batches(seqs.ids.map(len).tolist(), a.batch_tokens)]
    pass_nll(lm, batches[0])  # warm-up: the first call pays torch's one-off set-up
    t0 = time.time()
    for b in batches: pass_nll(lm, b)
    return {'way': 'forward only', 'n': n, 'tokens': int(seqs.ids.map(len).sum()), 'tokens_s': round(seqs.ids.map(len).sum() / (time.time() - t0))}

res_path = work/'results.json'
results = json.loads(res_path.read_text()) if res_path.exists() else {}
jobs = [('forward', 1000)] + [('stream', n) for n in a.sizes] + [('in-memory', n) for n in a.in_memory]
for way, n in sorted(jobs, key=lambda j: (j[0] == 'in-memory', j[1], j[0] != 'forward')):  # the baseline runs last
    key = f'{way}-{n}'
    if key not in results:
        results[key] = forward_speed(n) if way == 'forward' else run(n, way)
        res_path.write_text(json.dumps(results, indent=1))
    print(json.dumps(results[key]), flush=True)
stream = sorted((r for r in results.values() if r['way'] == 'stream'), key=lambda r: r['n'])
if len(stream) > 1:
    lo, hi = stream[0], stream[-1]
    print(f"peak RSS at N={hi['n']:,} / N={lo['n']:,}: {hi['peak_rss_mib'] / lo['peak_rss_mib']:.2f}x; wall time {hi['wall_s'] / lo['wall_s']:.2f}x")
for r in results.values():
    base = results.get(f"stream-{r['n']}")
    if r['way'] == 'in-memory' and base: print(f"in-memory / streaming at N={r['n']:,}: peak RSS {r['peak_rss_mib'] / base['peak_rss_mib']:.2f}x, wall time {r['wall_s'] / base['wall_s']:.2f}x")
