"""Regression check for the main `select-nb` jobs: freeze today's outputs, then compare a later run with them.

    python bench/regression.py run OUTDIR [--python-prefix PATH]   # run JOBS, each writing OUTDIR/<job>/
    python bench/regression.py compare DIR_A DIR_B                  # table of same / differs; exit 1 on a difference

`run` calls `select_nb.cli.main` in a subprocess per job (with `--python-prefix` first on `sys.path`, so a frozen
worktree such as /work/baseline can be targeted), on 117 real Alpaca records (4 with empty responses), on CPU, one thread,
with a fresh model/score cache in OUTDIR/cache. Two tiny random-weight LMs are saved first to OUTDIR/tiny and
OUTDIR/tiny2 (their file hashes go to OUTDIR/models/hashes.json, compared like a job, so a changed `tiny_lm` shows).
`compare` checks every .parquet/.csv/.json/.jsonl of each job: numbers within 1e-6 absolute, everything else exactly;
timing columns/keys are skipped, strings holding the run's own folder are skipped, and `summary.json` keys that only
B has are allowed (new settings). It also prints the number of selected records per job for both runs.
"""
import argparse, json, math, os, re, subprocess, sys, time
from pathlib import Path
import numpy as np, pandas as pd

TOL = 1e-6
TABLES = ('.parquet', '.csv', '.json', '.jsonl')  # the outputs compared (figures and model weights are not)
MIXED = 'data/alpaca_117.json'  # written by `run`: Alpaca records 0-112 with its 4 empty-response records at 10, 40, 70, 100
DATA = '--data {o}/' + MIXED  # 117 records: ratio 0.1 gives 11.7 of all (11.3 of the usable), so the count conventions show
JOBS = {  # job -> select-nb arguments; {o} is OUTDIR
    'score': f'score {DATA} --model {{o}}/tiny --out {{o}}/score/scores.parquet',
    'superfilter': f'superfilter {DATA} --model {{o}}/tiny --ratio 0.1 --out {{o}}/superfilter',
    'superfilter_d': f'superfilter {DATA} --model {{o}}/tiny --ratio 0.2 --diversity 5 --out {{o}}/superfilter_d',
    'consistency': 'consistency --data alpaca --limit 60 --models {o}/tiny,{o}/tiny2 --n-boot 50 --max-length 512 --out {o}/consistency',
    'nuggets': f'nuggets {DATA} --model {{o}}/tiny --anchors random:8 --candidates 24 --threshold 0.5 --out {{o}}/nuggets',
    'scar': f'scar rank {DATA} --limit 57 --ratio 0.1 --out {{o}}/scar',  # packaged ranker (+ SmolLM2 features)
    'kcenter': f'kcenter {DATA} --k 10 --out {{o}}/kcenter',
    'baseline_random': f'baseline {DATA} --by random --ratio 0.1 --out {{o}}/baseline_random',
    'baseline_longest': f'baseline {DATA} --by longest --ratio 0.1 --out {{o}}/baseline_longest',
    'baseline_perplexity': f'baseline {DATA} --by perplexity --ratio 0.1 --model {{o}}/tiny --out {{o}}/baseline_perplexity',
    'evaluate': f'evaluate --pool {{o}}/{MIXED} --selections random:0.1,longest:0.1,perplexity:0.1 --base {{o}}/tiny --scorer {{o}}/tiny '
                '--eval alpaca-eval-gpt4:10 --epochs 1 --out {o}/evaluate',
}
CHILD = """import sys
prefix = sys.argv.pop(1)
if prefix: sys.path.insert(0, prefix)
import select_nb; print('select_nb from', select_nb.__file__, flush=True)
if prefix and not select_nb.__file__.startswith(prefix.rstrip('/') + '/'): sys.exit(f'select_nb was not imported from {prefix}')
if sys.argv[1] == '--tiny':
    import hashlib, json, pathlib
    try: from select_nb.models.tiny import tiny_lm  # the layered package
    except ImportError: from select_nb.models import tiny_lm  # the flat one it is compared with
    out, hashes = pathlib.Path(sys.argv[2]), {}
    for name, kw in (('tiny', {}), ('tiny2', dict(arch='gpt2', seed=1))):
        lm = tiny_lm(**kw); lm.model.save_pretrained(out/name); lm.tokenizer.save_pretrained(out/name)
        hashes.update({f'{name}/{f.name}': hashlib.sha256(f.read_bytes()).hexdigest() for f in sorted((out/name).iterdir())})
    (out/'models').mkdir(); (out/'models'/'hashes.json').write_text(json.dumps(hashes, indent=1))
else:
    from select_nb.cli import main; sys.exit(main())
"""
TIMING = re.compile(r'(^|_)(seconds?|secs?|time|times|wall|elapsed|minutes|slowdown)($|_)|_s$', re.I)  # seconds, tok_s, load_s...


def run(outdir:Path, prefix:str|None):
    "Save the tiny models, then run every job into OUTDIR/<job>/, logging to OUTDIR/logs/ and timing to OUTDIR/run.json."
    outdir = outdir.resolve(); outdir.mkdir(parents=True, exist_ok=False); (outdir/'logs').mkdir()
    rows = json.loads(Path('/work/shared/data/alpaca/alpaca_random_9k.json').read_text())
    mixed = rows[:113]
    for pos, i in zip((10, 40, 70, 100), (1461, 3587, 6234, 8990)): mixed.insert(pos, rows[i])  # the sample's empty responses
    (outdir/MIXED).parent.mkdir(); (outdir/MIXED).write_text(json.dumps(mixed, indent=1, ensure_ascii=False))
    env = dict(os.environ, SELECT_NB_CACHE=str(outdir/'cache'), SELECT_NB_DATA='/work/shared/data', HF_HUB_OFFLINE='1',
               TRANSFORMERS_OFFLINE='1', OMP_NUM_THREADS='1', MKL_NUM_THREADS='1', TOKENIZERS_PARALLELISM='false',
               CUDA_VISIBLE_DEVICES='', PYTHONHASHSEED='0')
    report, t_all = {'python_prefix': prefix, 'jobs': {}}, time.time()
    for job, args in {'models': ['--tiny', str(outdir)], **{j: a.format(o=outdir).split() for j, a in JOBS.items()}}.items():
        t0 = time.time()
        with open(outdir/'logs'/f'{job}.txt', 'w') as log:
            rc = subprocess.run([sys.executable, '-c', CHILD, prefix or '', *args], cwd=outdir, env=env, stdout=log, stderr=subprocess.STDOUT).returncode
        first = (outdir/'logs'/f'{job}.txt').read_text().splitlines()[:1]
        report['jobs'][job] = {'rc': rc, 'seconds': round(time.time() - t0, 1), 'select_nb': first[0] if first else None}
        print(f"{job:20} rc={rc} {time.time() - t0:6.1f}s  {first[0] if first else ''}", flush=True)
    report['seconds'] = round(time.time() - t_all, 1)
    (outdir/'run.json').write_text(json.dumps(report, indent=1))
    print(f"all jobs in {report['seconds']:.0f}s -> {outdir}")
    return 1 if any(j['rc'] for j in report['jobs'].values()) else 0


def diff(a, b, where:str, ctx:dict)->str|None:
    "The first difference between two JSON-like values, or None (see the module docstring for what is skipped)."
    if isinstance(a, dict) and isinstance(b, dict):
        for k in a:
            if TIMING.search(str(k)): continue
            if k not in b: return f"{where}.{k}: missing in B"
            if d := diff(a[k], b[k], f"{where}.{k}", ctx): return d
        extra = [k for k in b if k not in a and not TIMING.search(str(k))]
        return f"{where}: keys only in B {extra[:5]}" if extra and not ctx['new_keys_ok'] else None
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b): return f"{where}: length {len(a)} vs {len(b)}"
        return next((d for i, (x, y) in enumerate(zip(a, b)) if (d := diff(x, y, f"{where}[{i}]", ctx))), None)
    if isinstance(a, str) and isinstance(b, str):
        if ctx['a'] in a or ctx['b'] in b: return None  # a path inside the run folder
        return None if a == b else f"{where}: {a[:60]!r} vs {b[:60]!r}"
    if isinstance(a, (int, float, bool)) and isinstance(b, (int, float, bool)) and not (isinstance(a, bool) ^ isinstance(b, bool)):
        if a == b or (math.isnan(a) and math.isnan(b)) or abs(a - b) <= TOL: return None
        return f"{where}: {a!r} vs {b!r}"
    return None if a == b else f"{where}: {str(a)[:60]!r} vs {str(b)[:60]!r}"


def plain(v):
    "A parquet cell as plain Python (arrays to lists, NaN/None kept)."
    if isinstance(v, np.ndarray): return [plain(x) for x in v.tolist()]
    if isinstance(v, dict): return {k: plain(x) for k, x in v.items()}
    return v.item() if isinstance(v, np.generic) else v


def diff_table(fa:Path, fb:Path, ctx:dict)->str|None:
    "A .parquet or .csv, column by column: numeric within TOL (NaN equal to NaN, inf to inf), anything else through `diff`."
    a, b = ((pd.read_parquet if f.suffix == '.parquet' else pd.read_csv)(f) for f in (fa, fb))
    cols = [c for c in a.columns if not TIMING.search(str(c))]
    if missing := [c for c in cols if c not in b.columns]: return f"columns missing in B: {missing}"
    if extra := [c for c in b.columns if c not in a.columns and not TIMING.search(str(c))]: return f"columns only in B: {extra}"
    if len(a) != len(b): return f"rows {len(a)} vs {len(b)}"
    for c in cols:
        x, y = a[c], b[c]
        if pd.api.types.is_numeric_dtype(x) and pd.api.types.is_numeric_dtype(y) and not pd.api.types.is_bool_dtype(x):
            x, y = x.to_numpy(float), y.to_numpy(float)
            with np.errstate(invalid='ignore'): bad = ~((x == y) | (np.isnan(x) & np.isnan(y)) | (np.abs(x - y) <= TOL))
            if bad.any(): i = int(np.argmax(bad)); return f"column {c}: {bad.sum()} rows differ (row {i}: {x[i]:.10g} vs {y[i]:.10g})"
        elif d := diff([plain(v) for v in x], [plain(v) for v in y], c, ctx): return f"column {d}"
    return None


def read_json(f:Path):
    return [json.loads(l) for l in f.read_text().splitlines() if l.strip()] if f.suffix == '.jsonl' else json.loads(f.read_text())


def n_selected(d:Path)->str:
    "Selected records of a run folder: selected.json, or per selection file of an evaluate run."
    if (d/'selected.json').exists(): return str(len(read_json(d/'selected.json')))
    sels = sorted((d/'selections').glob('*.jsonl')) if (d/'selections').is_dir() else []
    return ', '.join(f"{f.stem}={len(read_json(f))}" for f in sels) or '-'


def compare(da:Path, db:Path)->int:
    da, db = da.resolve(), db.resolve()
    rows, counts = [], []
    for job in ['models', *JOBS]:
        ja, jb = da/job, db/job
        files = sorted(p.relative_to(ja) for p in ja.rglob('*') if p.suffix in TABLES) if ja.is_dir() else []
        if not files: rows.append((job, '-', 'differs: no outputs in A')); continue
        for extra in sorted({p.relative_to(jb) for p in jb.rglob('*') if p.suffix in TABLES} - set(files)):
            rows.append((job, str(extra), 'differs: only in B'))
        for f in files:
            ctx = {'a': str(da), 'b': str(db), 'new_keys_ok': f.name == 'summary.json'}
            if not (jb/f).exists(): d = 'missing in B'
            elif f.suffix in ('.parquet', '.csv'): d = diff_table(ja/f, jb/f, ctx)
            else: d = diff(read_json(ja/f), read_json(jb/f), f.name, ctx)
            rows.append((job, str(f), 'same' if d is None else f"differs: {d}"))
        counts.append((job, n_selected(ja), n_selected(jb)))
    w = max(len(r[1]) for r in rows)
    print(f"{'job':20} {'file':{w}} status"); [print(f"{j:20} {f:{w}} {s}") for j, f, s in rows]
    print(f"\nselected records per job\n{'job':20} {'A':>24} {'B':>24}")
    for j, a, b in counts: print(f"{j:20} {a:>24} {b:>24}{'' if a == b else '   <- changed'}")
    bad = sum(s != 'same' for *_, s in rows)
    print(f"\n{len(rows) - bad} same, {bad} differ")
    return 1 if bad else 0


if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest='mode', required=True)
    p = sub.add_parser('run'); p.add_argument('outdir', type=Path); p.add_argument('--python-prefix', help="put this folder first on sys.path")
    p = sub.add_parser('compare'); p.add_argument('dir_a', type=Path); p.add_argument('dir_b', type=Path)
    a = ap.parse_args()
    sys.exit(run(a.outdir, a.python_prefix) if a.mode == 'run' else compare(a.dir_a, a.dir_b))
