#!/usr/bin/env python
"""Benchmark the scoring engine against the authors' way of scoring, in the same run.

(a) reference: one record at a time, fp32, full-sequence logits (what Cherry LLM / Superfiltering's
    `data_analysis.py` scripts do), scoring the same conditioned and unconditioned token sequences;
(b) the engine at its defaults (bf16, length-bucketed batches, logits only at scored positions).

Prints tokens/s of both, their ratio, the Spearman correlation of their IFD rankings, and the
engine's achieved GFLOP/s beside a dense bf16 matmul peak measured in the same run.
Runs unchanged on a CUDA GPU.  Usage:  python bench/engine.py [--n 200] [--models smollm2-135m,qwen2.5-coder-0.5b]
"""
import argparse, os, time
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import torch, torch.nn.functional as F
from scipy.stats import spearmanr
from select_nb.data.load import load
from select_nb.models.lm import load_lm, start_of
from select_nb.engine.encode import encode, sequences
from select_nb.run.executors import score

def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()

def matmul_peak(dev, n=2048, reps=10):
    "Dense bf16 matmul GFLOP/s on this device (best of `reps`)."
    a, b = (torch.randn(n, n, device=dev, dtype=torch.bfloat16) for _ in range(2))
    a @ b; sync(dev); best = 0
    for _ in range(reps):
        t = time.perf_counter(); a @ b; sync(dev); best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best / 1e9

@torch.inference_mode()
def reference(lm, seqs):
    "The authors' way: batch size 1, full-sequence logits, fp32 loss. Returns mean NLL per (id, pass)."
    out = {}
    for i, p, ids, n in seqs.itertuples(index=False):
        logits = lm.model(torch.tensor([ids], device=lm.device)).logits[0].float()
        out[(i, p)] = F.cross_entropy(logits[-n-1:-1], torch.tensor(ids[-n:], device=lm.device)).item()
    return out

def flops(lm, seqs):
    "Forward FLOPs of the engine on `seqs`: dense layers on every token, attention, the LM head on scored tokens only."
    cfg = lm.model.config.get_text_config()
    emb = lm.model.get_input_embeddings().weight.numel()
    body = sum(p.numel() for p in lm.model.base_model.parameters()) - emb
    lengths, scored = seqs.ids.map(len), seqs.n_scored.sum()
    attn = 2 * cfg.num_hidden_layers * cfg.num_attention_heads * (cfg.hidden_size // cfg.num_attention_heads if not getattr(cfg, 'head_dim', None) else cfg.head_dim) * (lengths ** 2).sum()
    return 2 * body * lengths.sum() + attn + 2 * cfg.hidden_size * cfg.vocab_size * scored

def bench(name, table, dev):
    ref_lm, lm = load_lm(name, dev, 'fp32'), load_lm(name, dev, 'bf16')
    seqs = sequences(encode(table, lm.tokenizer), start_of(lm)[1])
    ntok = seqs.ids.map(len).sum()
    sync(dev); t = time.perf_counter(); ref = reference(ref_lm, seqs); sync(dev); t_ref = time.perf_counter() - t
    score(table.head(4), model=lm, cache=False, progress=False)  # warm-up
    sync(dev); t = time.perf_counter(); eng = score(table, model=lm, cache=False, progress=False); sync(dev); t_eng = time.perf_counter() - t
    ref_ifd = [ref.get((i, 'cond'), float('nan')) - ref.get((i, 'uncond'), float('nan')) for i in eng.id]  # log ifd_ppl
    ok = eng.ifd_ppl.notna().values
    rho = spearmanr([r for r, k in zip(ref_ifd, ok) if k], eng.ifd_ppl[ok]).statistic
    return dict(model=name, tokens=int(ntok), ref_tok_s=ntok / t_ref, eng_tok_s=ntok / t_eng, speedup=t_ref / t_eng,
                spearman=rho, eng_gflops=flops(lm, seqs) / t_eng / 1e9)

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--n', type=int, default=200); ap.add_argument('--models', default='smollm2-135m,qwen2.5-coder-0.5b')
    a = ap.parse_args()
    dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu')
    table = load('alpaca', limit=a.n)
    peak = matmul_peak(dev)
    print(f"device {dev} ({torch.cuda.get_device_name() if dev.type == 'cuda' else f'{torch.get_num_threads()} threads'}); "
          f"{a.n} real Alpaca records; dense bf16 matmul peak {peak:.0f} GFLOP/s")
    print(f"{'model':22}{'tokens':>8}{'ref tok/s':>11}{'engine tok/s':>14}{'ratio':>8}{'Spearman':>10}{'GFLOP/s':>9}{'% peak':>8}")
    for m in a.models.split(','):
        r = bench(m, table, dev)
        print(f"{r['model']:22}{r['tokens']:>8}{r['ref_tok_s']:>11.0f}{r['eng_tok_s']:>14.0f}{r['speedup']:>7.2f}x"
              f"{r['spearman']:>10.4f}{r['eng_gflops']:>9.0f}{100 * r['eng_gflops'] / peak:>7.0f}%", flush=True)
