"""The time one selection's evaluation takes on this machine, stage by stage, against the goal of about 15 minutes:
fine-tuning the packaged Gemma-3-270M on a 100-record selection, answering all 541 IFEval prompts and checking them,
and the reference loss on the reference sets of three styles.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/evaluate_one.py [--records 100] [--ifeval 541] [--refs 300] [--out /tmp/bench_evaluate_one]

Each stage is the call the evaluation job makes (`finetune`, `ifeval_answers`, `score_ifeval`, `reference_nll`), with
the job's defaults (3 epochs, batch 8, LoRA; answers up to 256 new tokens; 512-token examples). The selection is
`random:R` of the first 2,000 Alpaca records with R = records / 2,000. A rerun with the same --out finds each stage's
output and skips it (the total then counts the training time the model's `train.json` records): delete the
folder to time again."""
import argparse, json, os, time, warnings
os.environ.setdefault('HF_HUB_OFFLINE', '1'); warnings.filterwarnings('ignore')
p = argparse.ArgumentParser(); p.add_argument('--records', type=int, default=100); p.add_argument('--ifeval', type=int, default=541)
p.add_argument('--refs', type=int, default=300); p.add_argument('--out', default='/tmp/bench_evaluate_one')
a = p.parse_args()
from pathlib import Path
from select_nb.data.load import load
from select_nb.eval.budget import selection
from select_nb.eval.ifeval import ifeval_answers, ifeval_metrics, ifeval_prompts, score_ifeval
from select_nb.train.finetune import finetune
from select_nb.train.reference import reference_nll

out, times = Path(a.out), {}
def timed(name, f):
    t = time.perf_counter(); r = f(); times[name] = round(time.perf_counter() - t, 1)
    print(f"{name:42s} {times[name]:7.1f} s", flush=True); return r

_, sel = selection(f"random:{a.records / 2000}", load('alpaca', limit=2000), seed=0)
train = f"fine-tune on {len(sel)} records"
lm, info = timed(train, lambda: finetune('gemma3-270m', sel, out/'model', progress=False))
if times[train] < info['seconds']:  # a rerun found the model: the total counts the time its train.json records
    times[train] = info['seconds']; print(f"{'  (trained earlier: train.json)':42s} {times[train]:7.1f} s", flush=True)
prompts = ifeval_prompts(a.ifeval)
ans = timed(f"answer {len(prompts)} IFEval prompts", lambda: ifeval_answers(lm, prompts, out=out/'ifeval.jsonl', progress=False))
scores = timed("check the answers (if-verifiable)", lambda: score_ifeval(ans, prompts))
for ref in ('alpaca-eval-gpt4', 'alpaca-eval-davinci003', 'dolly'):
    recs = load(ref, limit=a.refs)
    timed(f"reference loss, {len(recs)} {ref}", lambda: reference_nll(lm, recs, progress=False))
total = sum(times.values())
print(f"total {total / 60:.1f} min (goal: about 15 min); training {info['tokens_seen'] / info['seconds']:.0f} tok/s; "
      f"answers: {ans.tokens.sum():,} tokens, {ans.tokens.sum() / times[f'answer {len(prompts)} IFEval prompts']:.0f} tok/s, "
      f"{int(ans.at_budget.sum())} of {len(ans)} at the 256-token budget; IFEval prompt-level strict {ifeval_metrics(scores)['ifeval_prompt_strict']:.3f}")
(out/'times.json').write_text(json.dumps({'times': times, 'train': {k: info[k] for k in ('seconds', 'tokens_seen', 'steps')}}, indent=1))
