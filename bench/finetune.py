"""The trainer: TRL's `SFTTrainer` as configured by default against `select_nb.train.finetune`'s set-up, in one run.

    HF_HUB_OFFLINE=1 .venv/bin/python bench/finetune.py [--model gemma3-270m] [--records 32] [--steps 4]

Both train LoRA adapters (rank 16, all linear layers) on the same pre-tokenised Alpaca records, batch 8, for the same
number of steps from the same seed, and must reach the same losses. The baseline is `SFTTrainer` with TRL's defaults
(gradient checkpointing, bf16 autocast, the model's own full-vocabulary loss plus TRL's entropy and accuracy metrics);
`select_nb` turns off checkpointing and autocast (the model is already in its dtype) and takes the loss through
`response_loss` (LM head only at response positions). Seconds per optimizer step, after one warm-up step. Each set-up
runs in its own process (Accelerate's mixed-precision state is fixed once per process)."""
import argparse, copy, json, os, subprocess, sys, time, warnings
os.environ.setdefault('HF_HUB_OFFLINE', '1'); warnings.filterwarnings('ignore')
p = argparse.ArgumentParser(); p.add_argument('--model', default='gemma3-270m'); p.add_argument('--records', type=int, default=32); p.add_argument('--steps', type=int, default=4)
p.add_argument('--arm', choices=['default', 'select_nb'])
a = p.parse_args()
from transformers import TrainerCallback, PrinterCallback
from trl import SFTConfig, SFTTrainer
from select_nb.data.load import load
from select_nb.models.lm import load_lm
from select_nb.train.finetune import sft_dataset, _config, _peft_config, _trainer_class

class Clock(TrainerCallback):
    def __init__(self): self.t = []
    def on_step_end(self, *args, **kw): self.t.append(time.perf_counter())

def run(name, cls, cfg, lm, ds):
    clock = Clock()
    tr = cls(model=copy.deepcopy(lm.model), args=cfg, train_dataset=ds, processing_class=lm.tokenizer, peft_config=_peft_config(16, 32))
    tr.remove_callback(PrinterCallback); tr.add_callback(clock); tr.train()
    per_step = (clock.t[-1] - clock.t[0]) / (len(clock.t) - 1)
    losses = [h['loss'] for h in tr.state.log_history if 'loss' in h]
    return per_step, losses

def arm(name):
    "One set-up, in a fresh process: seconds per step and the losses."
    out = subprocess.run([sys.executable, __file__, '--arm', name, '--model', a.model, '--records', str(a.records), '--steps', str(a.steps)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])

if a.arm:
    lm = load_lm(a.model)
    ds, _ = sft_dataset(load('alpaca', limit=a.records), lm.tokenizer)
    if a.arm == 'select_nb': cls, cfg = _trainer_class(), _config('/tmp/bench_finetune', True, 1, a.steps, 8, 2e-4, 0, lm.device, False)
    else:
        cls = SFTTrainer
        cfg = SFTConfig(output_dir='/tmp/bench_finetune', per_device_train_batch_size=8, max_steps=a.steps, learning_rate=2e-4, lr_scheduler_type='cosine',
                        warmup_steps=0.03, logging_steps=1, save_strategy='no', report_to='none', seed=0, data_seed=0, completion_only_loss=True,
                        max_length=None, disable_tqdm=True, use_cpu=lm.device.type == 'cpu')
    t, losses = run(a.arm, cls, cfg, lm, ds)
    print(json.dumps({'s_per_step': t, 'losses': losses, 'records': len(ds), 'tokens': sum(map(len, ds['input_ids']))}))
else:
    d, m = arm('default'), arm('select_nb')
    print(f"{a.model}, {d['records']} records ({d['tokens']} tokens), batch 8, {a.steps} steps")
    print(f"SFTTrainer defaults      {d['s_per_step']:6.2f} s/step  losses {[round(x, 4) for x in d['losses']]}")
    print(f"select_nb.train.finetune {m['s_per_step']:6.2f} s/step  losses {[round(x, 4) for x in m['losses']]}")
    print(f"speed-up {d['s_per_step'] / m['s_per_step']:.1f}x; largest loss difference {max(abs(x - y) for x, y in zip(d['losses'], m['losses'])):.4f}")
