"Multi-turn scoring: every assistant turn against one-at-a-time scoring, the token-weighted aggregate, single-turn identity, the CLI."
import json
import numpy as np, pandas as pd, pytest, torch
import torch.nn.functional as F
from select_nb.core.env import data_dir
from select_nb.core.records import VICUNA_SYSTEM
from select_nb.data.load import load
from select_nb.data.formats import to_table, read_rows
from select_nb.models.tiny import tiny_lm
from select_nb.models.lm import load_lm
from select_nb.engine.score import score_responses
from select_nb.models.lm import start_of
from select_nb.engine.nll import SCORE_COLUMNS
from select_nb.engine.turns import score_table, expand_turns, turn_prompt

def _mt_chat(n):
    q = {r['question_id']: r['turns'] for r in read_rows(data_dir()/'eval/mt_bench_80.jsonl')}
    rows = []
    for r in read_rows(data_dir()/'eval/mt_bench_reference_gpt4.jsonl')[:n]:
        a = r['choices'][0]['turns']
        msgs = [('system', VICUNA_SYSTEM), ('user', q[r['question_id']][0]), ('assistant', a[0]), ('user', q[r['question_id']][1]), ('assistant', a[1])]
        rows.append({'messages': [{'role': k, 'content': v} for k, v in msgs]})
    return rows

def _sharegpt_pairs(n):
    s = load('scar-open-human-id-1000', limit=2 * n)
    return [{'conversations': [{'from': 'human', 'value': a.instruction}, {'from': 'gpt', 'value': a.response},
                               {'from': 'human', 'value': b.instruction}, {'from': 'gpt', 'value': b.response}]}
            for a, b in zip(s.iloc[0::2].itertuples(), s.iloc[1::2].itertuples())]

def _one(lm, prompt, response):
    "Summed NLL of the response after the prompt (tokenised together), and after the start token; token count."
    enc = lm.tokenizer(prompt + response, add_special_tokens=False, return_offsets_mapping=True)
    seq = enc['input_ids']; k = next(j for j, (s, e) in enumerate(enc['offset_mapping']) if e > len(prompt))
    with torch.no_grad():
        c = F.cross_entropy(lm.model(torch.tensor([seq])).logits[0, k - 1:-1].float(), torch.tensor(seq[k:]), reduction='sum').item()
        u = [start_of(lm)[1]] + seq[k:]
        un = F.cross_entropy(lm.model(torch.tensor([u])).logits[0, :-1].float(), torch.tensor(u[1:]), reduction='sum').item()
    return c, un, len(seq) - k

@pytest.mark.parametrize('rows', [_mt_chat(3), _sharegpt_pairs(3)], ids=['chat-messages', 'sharegpt'])
def test_each_turn_equals_one_at_a_time_and_the_aggregate_weights_tokens(tiny, rows):
    table = to_table(rows)
    agg, per_turn = score_table(table, model=tiny, template='alpaca', max_length=4096, cache=False, progress=False)
    assert len(per_turn) == 2 * len(table) and list(per_turn.turn[:2]) == [0, 1]
    for r, t in zip(per_turn.itertuples(), expand_turns(table, 'alpaca').itertuples()):
        c, u, n = _one(tiny, t.prompt, t.response)
        assert r.n_response == n and abs(r.nll_cond - c / n) <= 1e-5 and abs(r.nll_uncond - u / n) <= 1e-5
    for rid, g in per_turn.groupby('record'):
        a = agg.set_index('id').loc[rid]
        assert a.nll_cond == pytest.approx((g.nll_cond * g.n_response).sum() / g.n_response.sum(), rel=1e-12)
        assert a.ifd_ppl == pytest.approx(np.exp(a.nll_cond - a.nll_uncond), rel=1e-12) and a.n_turns == 2

def test_single_turn_records_are_scored_as_before(tiny):
    t = load('alpaca', limit=10)
    assert score_table(t, model=tiny, cache=False, progress=False)[0][SCORE_COLUMNS].equals(score_responses(t, model=tiny, cache=False, progress=False)[SCORE_COLUMNS])

def test_chat_template_turns_with_smollm2():
    lm = load_lm('smollm2-135m', dtype='fp32')
    table = to_table(_mt_chat(1))
    _, per_turn = score_table(table, model=lm, template='chat', max_length=4096, cache=False, progress=False)
    t = expand_turns(table, 'chat', lm.tokenizer)
    assert t.prompt[1].startswith('<|im_start|>system') and t.prompt[1].endswith('<|im_start|>assistant\n')
    for r, x in zip(per_turn.itertuples(), t.itertuples()):
        c, u, n = _one(lm, x.prompt, x.response)
        assert r.n_response == n and abs(r.nll_cond - c / n) <= 1e-4 and abs(r.nll_uncond - u / n) <= 1e-4

def test_cli_writes_turns(tmp_path):
    from select_nb.cli import main
    data = tmp_path/'chat.jsonl'; data.write_text('\n'.join(json.dumps(r) for r in _sharegpt_pairs(2) + [{'conversations': [
        {'from': 'human', 'value': 'Say hi.'}, {'from': 'gpt', 'value': 'hi there'}]}]))
    model = tmp_path/'tiny'; lm = tiny_lm(); lm.model.save_pretrained(model); lm.tokenizer.save_pretrained(model)
    main(['score', '--data', str(data), '--model', str(model), '--out', str(tmp_path/'s.parquet'), '--dtype', 'fp32', '--max-length', '8192'])
    turns, s = pd.read_parquet(tmp_path/'s.turns.parquet'), pd.read_parquet(tmp_path/'s.parquet')
    assert len(turns) == 5 and len(s) == 3 and list(s.n_turns) == [2, 2, 1]
    main(['superfilter', '--data', str(data), '--model', str(model), '--out', str(tmp_path/'sf'), '--ratio', '1'])
    assert len(pd.read_parquet(tmp_path/'sf'/'turns.parquet')) == 5
