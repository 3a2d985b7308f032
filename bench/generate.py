"""Answer generation: throughput against batch size, a static KV cache, and dropping finished rows
(`select_nb.models.lm.greedy_ids`), against the way answers were made before (`model.generate`, greedy, batches of 16
prompts sorted by length), in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/generate.py [--model gemma3-270m] [--prompts 32] [--max-new-tokens 256]

The prompts are IFEval's first `--prompts`, rendered with the Alpaca template, sorted longest first as the evaluation
job sorts them. Every arm answers all of them greedily; throughput is generated tokens (up to and with each answer's
end token) per second. An arm's answers are compared with the first arm's: in bf16 a different batch shape can flip a near-tie
argmax, so the count of identical answers is printed beside the speed."""
import argparse, os, time, warnings
os.environ.setdefault('HF_HUB_OFFLINE', '1'); warnings.filterwarnings('ignore')
p = argparse.ArgumentParser(); p.add_argument('--model', default='gemma3-270m'); p.add_argument('--prompts', type=int, default=32)
p.add_argument('--max-new-tokens', type=int, default=256); p.add_argument('--template', default='alpaca')
p.add_argument('--adapter', help='a folder written by select_nb.train.finetune: answer with that fine-tuned model (its answers end; the base model\'s rarely do)')
p.add_argument('--arms', default='all', help='comma-separated arm numbers to run (0, the way before, always runs)')
a = p.parse_args()
import numpy as np, torch
from select_nb.core.records import render_prompt
from select_nb.eval.ifeval import ifeval_prompts
from select_nb.models.lm import generate_ids, greedy_ids, left_padded, load_lm
from select_nb.train.finetune import load_finetuned

def answer_all(fn, texts, batch_size):
    "Answers in `texts` order, made in batches over the length-sorted prompts; and the seconds."
    order, out, t0 = np.argsort([-len(t) for t in texts], kind='stable'), [None] * len(texts), time.perf_counter()
    for s in range(0, len(order), batch_size):
        b = order[s:s + batch_size]
        for i, ids in zip(b, fn([texts[i] for i in b])): out[i] = ids
    return out, time.perf_counter() - t0

lm = load_lm(a.model)
if a.adapter: lm = load_finetuned(lm, a.adapter)
texts = [render_prompt(q, '', a.template, lm.tokenizer) for q in ifeval_prompts(a.prompts).prompt]
n = a.max_new_tokens
generate = lambda b, n, **kw: generate_ids(lm, left_padded(lm.tokenizer, b).to(lm.device), n, **kw)  # `model.generate`, extra arguments passed on
generate(texts[:2], 4)  # warm-up
arms = [('before: generate, batch 16', lambda b: generate(b, n), 16)]
arms += [(f"generate, batch {k}", lambda b: generate(b, n), k) for k in (4, 8, 32, 64)]
arms += [('generate, static cache, batch 16', lambda b: generate(b, n, cache_implementation='static'), 16)]
arms += [(f"greedy_ids: finished rows dropped, batch {k}", lambda b: greedy_ids(lm, b, n), k) for k in (16, 32, 64)]
if a.arms != 'all': arms = [arms[0]] + [arms[int(i)] for i in a.arms.split(',') if int(i)]
print(f"{a.model}{' + ' + a.adapter if a.adapter else ''}, {len(texts)} IFEval prompts (Alpaca template), greedy, max_new_tokens {n}, {torch.get_num_threads()} threads")
ref = None
for name, fn, bs in arms:
    ans, secs = answer_all(fn, texts, bs)
    toks = sum(map(len, ans)); ref = ref or (ans, toks / secs)
    same = sum(x == y for x, y in zip(ans, ref[0]))
    print(f"{name:36s} {secs:7.1f} s  {toks / secs:6.1f} tok/s  ratio {toks / secs / ref[1]:.2f}  at budget {sum(len(x) >= n for x in ans):2d}  "
          f"answers identical to before {same}/{len(ans)}", flush=True)
