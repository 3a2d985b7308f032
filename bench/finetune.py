"""The trainer: TRL's `SFTTrainer` as configured by default, `select_nb`'s trainer with the LM head's loss checkpointed
(recomputed in the backward pass), and `select_nb.train.finetune` as it is (`_HeadNLL`: the head's gradient taken in
the forward pass), in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/finetune.py [--model gemma3-270m] [--records 32] [--steps 4]

All three train LoRA adapters (rank 16, all linear layers) on the same pre-tokenised Alpaca records, batch 8, for the
same number of steps from the same seed. The first step's loss is taken on the same batch with the same weights, so it
must agree to 1e-5 between the two `select_nb` arms; later steps follow gradients that differ by bf16 rounding. The
baseline is `SFTTrainer` with TRL's defaults (gradient checkpointing, bf16 autocast, the model's own full-vocabulary
loss plus TRL's entropy and accuracy metrics). Seconds per optimizer step after one warm-up step, and real (unpadded)
tokens per second. Each set-up runs in its own process (Accelerate's mixed-precision state is fixed once per process)."""
import argparse, copy, json, os, subprocess, sys, time, warnings
os.environ.setdefault('HF_HUB_OFFLINE', '1'); warnings.filterwarnings('ignore')
p = argparse.ArgumentParser(); p.add_argument('--model', default='gemma3-270m'); p.add_argument('--records', type=int, default=32); p.add_argument('--steps', type=int, default=4)
p.add_argument('--arm', choices=['default', 'checkpointed', 'select_nb'])
a = p.parse_args()
import torch
from torch.utils.checkpoint import checkpoint
from transformers import TrainerCallback, PrinterCallback
from trl import SFTConfig, SFTTrainer
from select_nb.data.load import load
from select_nb.engine.nll import head_logits, nll_of_logits
from select_nb.models.lm import load_lm
from select_nb.train.finetune import sft_dataset, _config, _peft_config, _trainer_class

def _chunk_nll(lm, hidden, targets): return nll_of_logits(head_logits(lm, hidden), targets).sum()

def checkpointed_loss(model, input_ids, attention_mask, labels, chunk=256):
    "The response loss with each head chunk checkpointed: logits computed in the forward pass and again in the backward."
    lm = model.get_base_model() if hasattr(model, 'get_base_model') else model
    hidden = lm.base_model(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
    rows, cols = (labels[:, 1:] != -100).nonzero(as_tuple=True)
    h, tgt = hidden[rows, cols], labels[rows, cols + 1]
    parts = [checkpoint(_chunk_nll, lm, h[j:j + chunk], tgt[j:j + chunk], use_reentrant=False) for j in range(0, len(tgt), chunk)]
    return torch.stack(parts).sum() / max(len(tgt), 1)

class Clock(TrainerCallback):
    def __init__(self): self.t = []
    def on_step_end(self, *args, **kw): self.t.append(time.perf_counter())

def run(cls, cfg, lm, ds):
    clock, seen = Clock(), []
    class Counting(cls):
        def compute_loss(self, model, inputs, *args, **kw):
            seen.append(int(inputs['attention_mask'].sum()))
            return super().compute_loss(model, inputs, *args, **kw)
    tr = Counting(model=copy.deepcopy(lm.model), args=cfg, train_dataset=ds, processing_class=lm.tokenizer, peft_config=_peft_config(16, 32))
    tr.remove_callback(PrinterCallback); tr.add_callback(clock); tr.train()
    per_step = (clock.t[-1] - clock.t[0]) / (len(clock.t) - 1)
    losses = [h['loss'] for h in tr.state.log_history if 'loss' in h]
    return per_step, losses, sum(seen[1:]) / (clock.t[-1] - clock.t[0])

def arm(name):
    "One set-up, in a fresh process: seconds per step, the losses, tokens per second."
    out = subprocess.run([sys.executable, __file__, '--arm', name, '--model', a.model, '--records', str(a.records), '--steps', str(a.steps)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])

if a.arm:
    lm = load_lm(a.model)
    ds, _ = sft_dataset(load('alpaca', limit=a.records), lm.tokenizer)
    cfg = _config('/tmp/bench_finetune', True, 1, a.steps, 8, 2e-4, 0, lm.device, False)
    if a.arm == 'select_nb': cls = _trainer_class()
    elif a.arm == 'checkpointed':
        class cls(_trainer_class()):
            def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
                loss = checkpointed_loss(model, inputs['input_ids'], inputs.get('attention_mask'), inputs['labels'])
                return (loss, None) if return_outputs else loss
    else:
        cls = SFTTrainer
        cfg = SFTConfig(output_dir='/tmp/bench_finetune', per_device_train_batch_size=8, max_steps=a.steps, learning_rate=2e-4, lr_scheduler_type='cosine',
                        warmup_steps=0.03, logging_steps=1, save_strategy='no', report_to='none', seed=0, data_seed=0, completion_only_loss=True,
                        max_length=None, disable_tqdm=True, use_cpu=lm.device.type == 'cpu')
    t, losses, tps = run(cls, cfg, lm, ds)
    print(json.dumps({'s_per_step': t, 'losses': losses, 'tok_s': tps, 'records': len(ds), 'tokens': sum(map(len, ds['input_ids']))}))
else:
    d, c, m = arm('default'), arm('checkpointed'), arm('select_nb')
    print(f"{a.model}, {d['records']} records ({d['tokens']} tokens), batch 8, {a.steps} steps")
    for name, r in (('SFTTrainer defaults', d), ('select_nb, head checkpointed', c), ('select_nb.train.finetune', m)):
        print(f"{name:30s} {r['s_per_step']:6.2f} s/step  {r['tok_s']:5.0f} tok/s  losses {[round(x, 6) for x in r['losses']]}")
    print(f"speed-up over TRL's defaults {d['s_per_step'] / m['s_per_step']:.2f}x, over the checkpointed head {c['s_per_step'] / m['s_per_step']:.2f}x; "
          f"first-step loss difference to the checkpointed head {abs(c['losses'][0] - m['losses'][0]):.1e}, "
          f"largest over all steps {max(abs(x - y) for x, y in zip(c['losses'], m['losses'])):.1e}")
