"""LM head + fp32 log-softmax over scored positions: one call vs chunks of 16M and 8M logits.

    .venv/bin/python bench/head_chunks.py [--model smollm2-135m] [--rows 2000]

Random hidden states through the model's real (bf16) head; prints seconds per pass of each way and the
ratios, the same-run baseline being the unchunked call. The engine (`select_nb.engine.nll.scored_nll`) uses 8M.
"""
import argparse, os, time
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import torch
from select_nb.models.lm import load_lm
from select_nb.engine.nll import head_logits, nll_of_logits

p = argparse.ArgumentParser(); p.add_argument('--model', default='smollm2-135m'); p.add_argument('--rows', type=int, default=2000)
args = p.parse_args()
lm = load_lm(args.model); torch.set_grad_enabled(False); torch.manual_seed(0)
cfg = lm.model.config.get_text_config()
h = torch.randn(args.rows, cfg.hidden_size, dtype=lm.dtype, device=lm.device)
t = torch.randint(0, cfg.vocab_size, (args.rows,), device=lm.device)

def run(chunk): return torch.cat([_nll_of_logits(_head_logits(lm.model, h[j:j+chunk]), t[j:j+chunk]) for j in range(0, len(t), chunk)])

ways = {'unchunked': args.rows, '16M logits': max(1, 2**24 // cfg.vocab_size), '8M logits': max(1, 2**23 // cfg.vocab_size)}
res = {}
for name, chunk in ways.items():
    run(chunk); best = float('inf')
    for _ in range(3): s = time.perf_counter(); run(chunk); best = min(best, time.perf_counter() - s)
    res[name] = best
    print(f"{name:>10} ({chunk} rows per chunk): {best:.3f} s for {args.rows} rows", flush=True)
print(f"8M chunks vs unchunked: {res['unchunked'] / res['8M logits']:.2f}x; vs 16M chunks: {res['16M logits'] / res['8M logits']:.2f}x")
