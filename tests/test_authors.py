"The authors' conventions against one-at-a-time implementations written from their scripts' description, on real Alpaca records with SmolLM2."
import math
import numpy as np, pytest, torch
import torch.nn.functional as F
import select_nb.engine.score as sc
from select_nb.data.load import load

ALPACA = ("Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
          "### Instruction:\n{instruction}\n\n### Response:")
ALPACA_INPUT = ("Below is an instruction that describes a task, paired with an input that provides further context. "
                "Write a response that appropriately completes the request.\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:")

@torch.no_grad()
def superfiltering_one(lm, ins, inp, out, L):
    "Superfiltering's data_analysis.py for one record: ppl ratio, NaN where the script gives NaN or no row."
    tok, model = lm.tokenizer, lm.model
    if out == '': return math.nan
    prompt = f"{ins}\n{inp}\n" if inp != '' else f"{ins}\n"
    n_instr = tok.encode(prompt, return_tensors='pt', truncation=True, max_length=L).shape[1]
    alone = tok.encode(out, return_tensors='pt', truncation=True, max_length=L - n_instr + 1)
    loss_alone = model(alone, labels=alone).loss.item()
    text = prompt + out
    ids = tok.encode(text, return_tensors='pt', truncation=True, max_length=L)
    labels = ids.clone(); labels[0, :len(tok.encode(text[:text.rfind(out)]))] = -100
    loss_cond = model(ids, labels=labels).loss.item()
    return math.exp(loss_cond) / math.exp(loss_alone)

@torch.no_grad()
def cherry_one(lm, ins, inp, out, L):
    "Cherry LLM's data_analysis.py (--mod cherry) + data_by_IFD.py for one record: loss ratio, NaN where the scripts skip it."
    tok, model = lm.tokenizer, lm.model
    prompt = ALPACA.format(instruction=ins) if inp == '' else ALPACA_INPUT.format(instruction=ins, input=inp)
    n_instr = tok.encode(prompt, return_tensors='pt', truncation=True, max_length=L).shape[1]
    if L - n_instr <= 0: return math.nan
    def part(text, max_length):
        ids = tok.encode(text, return_tensors='pt', truncation=True, max_length=max_length)
        logits = model(ids).logits[0].float()
        losses = [F.nll_loss(F.log_softmax(logits[i - 1], -1)[None], ids[0, i][None]).item() for i in range(1, ids.shape[1])]
        start = len(tok.encode(text[:text.rfind(out)]))
        return ids.shape[1] - start, np.array(losses[start - 1:ids.shape[1] - 1])
    len1, l1 = part('### Response:' + out, L - n_instr + 4)
    len2, l2 = part(prompt + out, L)
    if len1 <= 0 or len2 <= 0 or n_instr + len1 > L: return math.nan
    return l2.mean() / l1.mean()

# real records: ordinary ones, one-token responses (7, 9, 131), an empty output (1461), long prompts (667, 1442)
ROWS = list(range(10)) + [131, 1461, 667, 1442]

@pytest.fixture(scope='module')
def fp32(): 
    from select_nb.models.lm import load_lm
    return load_lm('smollm2-135m', dtype='fp32')

@pytest.mark.parametrize('name,one,col', [('superfiltering', superfiltering_one, 'ifd_ppl'), ('cherry', cherry_one, 'ifd_loss')])
@pytest.mark.parametrize('L', [None, 80])
def test_authors_batched_equals_one_at_a_time(fp32, name, one, col, L):
    recs = load('alpaca', lenient=True).iloc[ROWS]
    s = sc.score_responses(recs, model=fp32, authors=name, max_length=L, cache=False, progress=False, batch_tokens=4096)
    L = L or {'superfiltering': 1024, 'cherry': 512}[name]
    ref = np.array([one(fp32, r.instruction, r.input, r.response, L) for r in recs.itertuples()])
    scored = s.status.isin(['ok', 'truncated']).values
    assert (scored == ~np.isnan(ref)).all(), list(zip(s.status, ref))  # no number exactly where the script gives none
    assert np.abs(s[col].values[scored] - ref[scored]).max() <= 1e-4
    assert s[col][~scored].isna().all() and set(s.status[~scored]) <= {'empty_response', 'prompt_too_long', 'unscored_alone', 'over_budget'}
    assert (s.convention == name).all() and s.dtype.iloc[0] == 'fp32'
