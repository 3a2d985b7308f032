"""Nuggets golden scores: cached candidate prefix (KV reuse, batched anchors) vs naive concatenation, one pair at a time.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/nuggets.py [--candidates 20] [--anchors 100] [--anchor-max-tokens 200] [--dtype bf16] [--device cpu]

Anchors: the first N of the published alpaca-gpt4-kmeans100 set; candidates: the first records of the
Alpaca 9k sample. Prints both times, their ratio, pairs/s, and how far the two ways' numbers differ.
"""
import argparse, os, time
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import numpy as np, torch
from select_nb.data.load import load
from select_nb.models.lm import load_lm
from select_nb.engine.encode import make_batches, default_batch_tokens
from select_nb.methods.nuggets import encode_examples, zero_shot, one_shot, one_shot_naive, golden_score

p = argparse.ArgumentParser()
p.add_argument('--candidates', type=int, default=20)
p.add_argument('--anchors', type=int, default=100)
p.add_argument('--model', default='smollm2-135m')
p.add_argument('--dtype', default=None)
p.add_argument('--device', default=None)
p.add_argument('--batch-tokens', type=int, default=None)
p.add_argument('--anchor-max-tokens', type=int, default=200, help="cut anchors (the authors' 200; 0: no cut)")
args = p.parse_args()

lm = load_lm(args.model, args.device, args.dtype)
torch.set_grad_enabled(False)
anchors = encode_examples(load('alpaca-gpt4-kmeans100').iloc[:args.anchors], lm.tokenizer, args.anchor_max_tokens or None)
anchors = anchors[anchors.status.isin(['ok', 'truncated'])].reset_index(drop=True)
cands = encode_examples(load('alpaca', limit=args.candidates), lm.tokenizer, 1024, bos=True)
bt = args.batch_tokens or default_batch_tokens(lm.device)
batches = make_batches(anchors.ids.map(len).tolist(), bt)
print(f"model {lm.name} ({lm.dtype}, {lm.device}, {torch.get_num_threads()} threads); {len(cands)} candidates "
      f"(mean {cands.ids.map(len).mean():.0f} tokens) x {len(anchors)} anchors (mean {anchors.ids.map(len).mean():.0f} tokens); "
      f"anchor batches of <= {bt} tokens: {len(batches)}")
t = time.perf_counter(); zero = zero_shot(lm, anchors); t_zero = time.perf_counter() - t
one_shot(lm, cands.ids[0], anchors, batches); one_shot_naive(lm, cands.ids[0], anchors.iloc[:5])  # warm-up

def timed(fn):
    t = time.perf_counter(); res = [fn(ids) for ids in cands.ids]; return time.perf_counter() - t, np.array(res)

print(f"zero-shot (once per anchor set): {t_zero:.1f}s", flush=True)
t_cached, cached = timed(lambda ids: one_shot(lm, ids, anchors, batches))
pairs = cached.size
print(f"cached prefix: {t_cached:.1f}s  ({pairs / t_cached:.1f} pairs/s, {t_cached / len(cands):.2f}s per candidate)", flush=True)
t_naive, naive = timed(lambda ids: one_shot_naive(lm, ids, anchors))
g_c = [golden_score(o, zero) for o in cached]; g_n = [golden_score(o, zero) for o in naive]
print(f"naive, one pair at a time: {t_naive:.1f}s  ({pairs / t_naive:.1f} pairs/s)")
tok_c = len(cands) * anchors.ids.map(len).sum()
tok_n = tok_c + len(anchors) * cands.ids.map(len).sum()
print(f"speed-up: {t_naive / t_cached:.2f}x")
print(f"tokens through the model: cached {tok_c:,} ({tok_c / t_cached:.0f} tok/s), naive {tok_n:,} ({tok_n / t_naive:.0f} tok/s); "
      f"the prefix reuse alone saves {tok_n / tok_c:.2f}x, batching the rest {t_naive / t_cached / (tok_n / tok_c):.2f}x")
print(f"max |logp cached - naive| = {np.abs(cached - naive).max():.3g} (of mean |logp| {np.abs(naive).mean():.1f}); "
      f"golden scores equal for {sum(a == b for a, b in zip(g_c, g_n))}/{len(g_c)} candidates, max diff {max(abs(a - b) for a, b in zip(g_c, g_n)):.3f}")
print(f"predicted full run: {9229 * len(anchors) / (pairs / t_cached) / 3600:.1f} h for 9,229 candidates x {len(anchors)} anchors on this machine")
