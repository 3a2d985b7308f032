import math
import numpy as np, pytest, torch
import torch.nn.functional as F
import select_nb.engine.score as sc, select_nb.engine.nll as nll
from select_nb.data.formats import to_table
from select_nb.data.load import load

def _ref(lm, seq, n):
    with torch.no_grad(): logits = lm.model(torch.tensor([seq])).logits[0].float()
    return F.cross_entropy(logits[-n-1:-1], torch.tensor(seq[-n:]), reduction='none').mean().item()

def _recs(n=20):
    return to_table([{'instruction': f'Task {i}: ' + 'say ' * (i % 4), 'input': 'x' * (i % 3), 'output': 'word ' * (1 + 5 * i % 17)}
                     for i in range(n)])

@pytest.mark.parametrize('add_bos', [False, True])
def test_hand_checked_example(add_bos):
    from select_nb.models.tiny import tiny_lm
    lm = tiny_lm(add_bos=add_bos)
    tok = lm.tokenizer
    rec = to_table([{'instruction': 'Add.', 'input': '2 3', 'output': '5 is the sum'}])
    e = sc.encode(rec, tok)
    assert e.prompt_ids[0] + e.response_ids[0] == tok("Add.\n2 3\n5 is the sum")['input_ids']
    assert tok.decode(e.response_ids[0]) == "5 is the sum"
    assert (e.prompt_ids[0][0] == tok.bos_token_id) == add_bos
    s = sc.score_responses(rec, model=lm, cache=False, progress=False)
    r, start = e.response_ids[0], (tok.bos_token_id if add_bos else tok.eos_token_id)  # the prepended BOS, else (no end-of-text token) EOS
    assert s.start_token[0] == tok.convert_ids_to_tokens(start)
    c, u = _ref(lm, e.prompt_ids[0] + r, len(r)), _ref(lm, [start] + r, len(r))
    assert s.nll_cond[0] == pytest.approx(c, abs=1e-5) and s.nll_uncond[0] == pytest.approx(u, abs=1e-5)
    assert s.ifd_ppl[0] == pytest.approx(math.exp(c - u), rel=1e-5) and s.ifd_loss[0] == pytest.approx(c / u, rel=1e-5)

def test_batched_equals_one_at_a_time(tiny):
    recs = _recs()
    one = sc.score_responses(recs, model=tiny, batch_tokens=1, cache=False, progress=False)
    many = sc.score_responses(recs, model=tiny, batch_tokens=10**6, cache=False, progress=False)
    shuffled = sc.score_responses(recs.sample(frac=1, random_state=1), model=tiny, batch_tokens=200, cache=False, progress=False)
    shuffled = shuffled.set_index('id').loc[recs.id].reset_index()
    for other in (many, shuffled):
        assert np.abs(one.nll_cond - other.nll_cond).max() <= 1e-4
        assert np.abs(one.nll_uncond - other.nll_uncond).max() <= 1e-4

def test_gpt2_architecture_works_too():
    from select_nb.models.tiny import tiny_lm
    lm = tiny_lm('gpt2')
    rec = to_table([{'instruction': 'Add.', 'output': '5 is the sum'}])
    e = sc.encode(rec, lm.tokenizer); r = e.response_ids[0]
    s = sc.score_responses(rec, model=lm, cache=False, progress=False)
    assert s.nll_cond[0] == pytest.approx(_ref(lm, e.prompt_ids[0] + r, len(r)), abs=1e-5)

def test_every_status(tiny):
    t = to_table([{'instruction': 'Add.', 'input': '2 3', 'output': '5'}, {'instruction': 'Repeat.', 'output': 'word ' * 40},
                  {'instruction': 'Long ' * 40, 'output': 'ok'}, {'instruction': 'Empty.', 'output': ''},
                  {'instruction': 'Add.', 'input': '2 3', 'output': '5'}])
    s = sc.score_responses(t, model=tiny, max_length=32, cache=False, progress=False)
    assert list(s.status) == ['ok', 'truncated', 'prompt_too_long', 'empty_response', 'duplicate']
    assert s.n_prompt[1] + s.n_response[1] == 32
    assert s.ifd_ppl[:2].notna().all() and s.ifd_ppl[2:].isna().all()

def test_truncation_is_the_same_cut_in_both_passes(tiny):
    t = to_table([{'instruction': 'Repeat.', 'output': 'word ' * 40}])
    e = sc.encode(t, tiny.tokenizer, max_length=20)
    seqs = sc.sequences(e, sc.start_of(tiny)[1])
    assert list(seqs.n_scored) == [20 - len(e.prompt_ids[0])] * 2
    assert seqs.ids[0][-seqs.n_scored[0]:] == seqs.ids[1][1:]

def test_resume_after_interrupt(tiny, tmp_path, monkeypatch):
    recs, calls, real = _recs(), [], sc.pass_nll
    def dies(lm, seqs):
        if len(calls) == 2: raise KeyboardInterrupt
        calls.append(len(seqs)); return real(lm, seqs)
    monkeypatch.setattr(sc, 'pass_nll', dies)
    with pytest.raises(KeyboardInterrupt): sc.score_responses(recs, model=tiny, batch_tokens=300, cache=tmp_path, progress=False)
    saved = len(sc.score_cache(tiny, cache=tmp_path).read())
    assert saved == sum(calls) > 0
    calls.clear(); monkeypatch.setattr(sc, 'pass_nll', lambda lm, s: calls.append(len(s)) or real(lm, s))
    resumed = sc.score_responses(recs, model=tiny, batch_tokens=300, cache=tmp_path, progress=False)
    assert sum(calls) == 2 * len(recs) - saved
    fresh = sc.score_responses(recs, model=tiny, cache=False, progress=False)
    assert np.abs(resumed.ifd_ppl - fresh.ifd_ppl).max() <= 1e-4

def test_oom_batches_are_split_not_lost(tiny, monkeypatch):
    recs, real = _recs(), nll.token_nll
    def small(lm, seqs, n):
        if len(seqs) > 3: raise torch.OutOfMemoryError("simulated")
        return real(lm, seqs, n)
    monkeypatch.setattr(nll, 'token_nll', small)
    got = sc.score_responses(recs, model=tiny, batch_tokens=10**6, cache=False, progress=False)
    monkeypatch.setattr(nll, 'token_nll', real)
    ref = sc.score_responses(recs, model=tiny, cache=False, progress=False)
    assert np.abs(got.nll_cond - ref.nll_cond).max() <= 1e-4

def test_lenient_bad_records_are_reported_not_scored(tiny, tmp_path):
    p = tmp_path/'m.jsonl'
    p.write_text('{"instruction": "a", "output": "b"}\nnot json\n')
    s = sc.score_responses(load(p, lenient=True), model=tiny, cache=False, progress=False)
    assert list(s.status) == ['ok', 'invalid']

def test_smollm2_fp32_matches_full_logits():
    from select_nb.models.lm import load_lm
    lm = load_lm('smollm2-135m', dtype='fp32')
    rec = load('alpaca', limit=3)
    s = sc.score_responses(rec, model=lm, cache=False, progress=False)
    e = sc.encode(rec, lm.tokenizer)
    for i in range(3):
        r = e.response_ids[i]
        assert s.nll_cond[i] == pytest.approx(_ref(lm, e.prompt_ids[i] + r, len(r)), abs=1e-4)
