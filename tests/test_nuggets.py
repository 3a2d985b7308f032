"""Tests for select_nb.nuggets: KV-prefix reuse equals plain concatenation, golden scores, resume, the job."""
import json, os
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import numpy as np, pandas as pd, pytest, torch
import select_nb.methods.nuggets as N
from select_nb.jobs.nuggets import NuggetsSettings, nuggets_job
from select_nb.data.load import load
from select_nb.data.formats import to_table
from select_nb.data.load import load
from select_nb.models.tiny import tiny_lm
from select_nb.models.lm import load_lm
from select_nb.engine.nll import token_nll

ANCHORS = to_table([{'instruction': f'Task {i}: ' + 'say something ' * (i % 4), 'input': 'x y' * (i % 3),
                     'output': 'word ' * (1 + 5 * i % 17)} for i in range(12)])
POOL = to_table([{'instruction': f'Q{i}: ' + 'tell me ' * (i % 4), 'input': 'ab' * (i % 2), 'output': 'yes ' * (1 + 3 * i % 11)}
                 for i in range(8)] + [{'instruction': 'Empty.', 'output': ''}])

def test_prompt():
    assert N.nuggets_prompt(' Add. ', ' 2 3 ') == "Instruction:\nAdd.\nInput:\n2 3\nResponse:\n"
    assert N.nuggets_prompt('Hi.') == "Instruction:\nHi.\nResponse:\n"

def test_encode_truncation_and_bos():
    tok = tiny_lm().tokenizer
    enc = N.encode_examples(ANCHORS, tok, max_tokens=20)
    assert enc.ids.map(len).max() <= 20
    full = N.encode_examples(ANCHORS, tok)
    assert all(a == b[:len(a)] for a, b in zip(enc.ids, full.ids))
    btok = tiny_lm(add_bos=True).tokenizer
    assert N.encode_examples(ANCHORS, btok, bos=True).ids[0][0] == btok.bos_token_id
    assert N.encode_examples(ANCHORS, btok).ids[0][0] != btok.bos_token_id

@pytest.mark.parametrize('arch', ['llama', 'gpt2'])
@pytest.mark.parametrize('batch_tokens', [1, 150, 100_000])
def test_cached_prefix_equals_concatenation(arch, batch_tokens):
    lm = tiny_lm(arch)
    a = N.encode_examples(ANCHORS, lm.tokenizer)
    cand = N.encode_examples(POOL, lm.tokenizer, bos=True).ids[3]
    np.testing.assert_allclose(N.one_shot(lm, cand, a, batch_tokens=batch_tokens), N.one_shot_naive(lm, cand, a), atol=1e-4)

def test_cached_prefix_with_bos_tokenizer():
    lm = tiny_lm(add_bos=True)
    a = N.encode_examples(ANCHORS, lm.tokenizer)
    cand = N.encode_examples(POOL, lm.tokenizer, bos=True).ids[1]
    assert cand[0] == lm.tokenizer.bos_token_id
    np.testing.assert_allclose(N.one_shot(lm, cand, a, batch_tokens=300), N.one_shot_naive(lm, cand, a), atol=1e-4)
    z_bos, z_no = N.zero_shot(lm, a, bos=True), N.zero_shot(lm, a, bos=False)
    ref = [-token_nll(lm, [[1] + s], [n])[0].sum().item() for s, n in zip(a.ids, a.n_scored)]
    np.testing.assert_allclose(z_bos, ref, atol=1e-4)
    assert not np.allclose(z_bos, z_no)

def test_golden_score_strict():
    assert N.golden_score([1., 2., 3., -1.], [0., 2., 2., 0.]) == 0.5

def test_golden_scores_match_reference_and_statuses():
    lm = tiny_lm()
    tbl = pd.concat([POOL, ANCHORS.iloc[:2]], ignore_index=True)
    gs = N.golden_scores(tbl, ANCHORS, lm, cache=False, progress=False)
    a = N.encode_examples(ANCHORS, lm.tokenizer)
    zero = np.array([-token_nll(lm, [s], [n])[0].sum().item() for s, n in zip(a.ids, a.n_scored)])
    for i in range(8):
        one = N.one_shot_naive(lm, N.encode_examples(POOL.iloc[[i]], lm.tokenizer, bos=True).ids[0], a)
        assert gs.golden[i] == pytest.approx(N.golden_score(one, zero))
    assert list(gs.status[8:]) == ['empty_response', 'anchor', 'anchor']
    assert gs.golden[8:].isna().all()

def test_resume(tmp_path, monkeypatch):
    lm, real, calls = tiny_lm(), N.one_shot, []
    full = N.golden_scores(POOL, ANCHORS, lm, cache=False, progress=False)
    def dies(lm, ids, *a):  # counts candidates; the zero-shot pass is the call with an empty candidate
        if ids and len(calls) == 3: raise KeyboardInterrupt
        if ids: calls.append(1)
        return real(lm, ids, *a)
    monkeypatch.setattr(N, 'one_shot', dies)
    with pytest.raises(KeyboardInterrupt): N.golden_scores(POOL, ANCHORS, lm, cache=tmp_path, progress=False, save_s=0)
    calls.clear(); monkeypatch.setattr(N, 'one_shot', lambda lm, ids, *a: (ids and calls.append(1)) or real(lm, ids, *a))
    again = N.golden_scores(POOL, ANCHORS, lm, cache=tmp_path, progress=False)
    assert len(calls) == 5  # 8 scorable candidates, 3 saved before the kill
    np.testing.assert_allclose(again.golden[:8].astype(float), full.golden[:8].astype(float))
    calls.clear(); N.golden_scores(POOL, ANCHORS, lm, cache=tmp_path, progress=False)
    assert calls == []

def test_anchor_sets():
    al = load('alpaca', limit=120)
    r = N.random_anchors(al, 10, seed=1)
    assert len(r) == 10 and list(r.id) == list(N.random_anchors(al, 10, seed=1).id)
    emb = np.random.default_rng(0).normal(size=(len(al), 8))
    k = N.kmeans_anchors(al, 5, emb=emb)
    assert 0 < len(k) <= 5 and k.id.is_unique and set(k.id) <= set(al.id)
    a, name = N.pick_anchors('alpaca-gpt4-kmeans100', al)
    assert (len(a), name) == (100, 'alpaca-gpt4-kmeans100')
    with pytest.raises(Exception): N.pick_anchors('no-such-anchor-set', al)

def test_threshold_table_and_selection():
    gs = N.golden_scores(POOL, ANCHORS, tiny_lm(), cache=False, progress=False)
    tt = N.threshold_table({'x': gs})
    assert list(tt.columns) == ['> 0.5', '> 0.6', '> 0.7', '> 0.8', '> 0.85', '> 0.9', 'scored']
    assert tt.loc['x', 'scored'] == 8
    assert len(N.select_above(POOL, gs, 0.5)) == tt.loc['x', '> 0.5']

def test_job(tmp_path):
    src = tmp_path/'pool.jsonl'
    src.write_text(''.join(json.dumps({'instruction': f'Q{i}: ' + 'tell me ' * (i % 4), 'input': '', 'output': 'yes ' * (1 + 3 * i % 11)}) + '\n'
                           for i in range(14)))
    out = tmp_path/'out'
    s = nuggets_job(NuggetsSettings(data=src, anchors='random:4', model=tiny_lm(), threshold=0.5, out=out, cache=tmp_path/'cache', authors=True), progress=False)
    assert (s['records'], s['n_anchors'], s['scored'], s['anchor_max_tokens'], s['anchor_bos']) == (14, 4, 10, 200, False)
    assert {p.name for p in out.iterdir()} == {'anchors.json', 'by_threshold', 'golden_scores.png', 'scores.parquet', 'selected.jsonl', 'summary.json'}
    assert len((out/'by_threshold'/'selected_above_0.5.jsonl').read_text().splitlines()) == s['above']['> 0.5']
    assert len((out/'selected.jsonl').read_text().splitlines()) == s['selected']
    again = nuggets_job(NuggetsSettings(data=src, anchors='random:4', model=tiny_lm(), threshold=0.5, out=tmp_path/'out2', cache=tmp_path/'cache', authors=True), progress=False)
    assert again['above'] == s['above']

def test_smollm2_cached_prefix_equals_concatenation():
    lm = load_lm('smollm2-135m', dtype='fp32')
    al = load('alpaca', limit=3)
    a = N.encode_examples(load('alpaca-gpt4-kmeans100').iloc[:6], lm.tokenizer, max_tokens=200)
    cand = N.encode_examples(al, lm.tokenizer, bos=True).ids[0]
    cached, naive = N.one_shot(lm, cand, a, batch_tokens=600), N.one_shot_naive(lm, cand, a)
    np.testing.assert_allclose(cached, naive, atol=1e-3, rtol=1e-5)

def test_job_candidate_sample(tmp_path):
    "`candidates=N` scores the same seeded sample whatever the anchors, and anchors never come from it."
    src = tmp_path/'pool.jsonl'
    src.write_text(''.join(json.dumps({'instruction': f'Q{i}: ' + 'tell me ' * (i % 4), 'input': '', 'output': 'yes ' * (1 + 3 * i % 11)}) + '\n'
                           for i in range(20)))
    runs = {spec: nuggets_job(NuggetsSettings(data=src, anchors=spec, model=tiny_lm(), out=tmp_path/spec.replace(':', '_'), candidates=6, cache=False), progress=False)
            for spec in ('random:4', 'random:9')}
    ids = {spec: set(pd.read_parquet(tmp_path/spec.replace(':', '_')/'scores.parquet').id) for spec in runs}
    assert ids['random:4'] == ids['random:9'] and len(ids['random:4']) == 6
    for spec in runs:
        anchors = load(tmp_path/spec.replace(':', '_')/'anchors.json')
        assert not set(anchors.id) & ids[spec]
        assert (runs[spec]['records'], runs[spec]['candidates'], runs[spec]['scored']) == (20, 6, 6)

def test_zero_and_one_shot_share_one_numeric_path_at_default_precision(smol, tmp_path):
    "bf16 SmolLM2 on real anchors: an empty candidate equals the zero-shot bit for bit (golden 0), in the job's pipeline too."
    al = load('alpaca', limit=40)
    a = N.encode_examples(al.iloc[:16], smol.tokenizer)
    z = N.zero_shot(smol, a)
    assert np.array_equal(N.one_shot(smol, [], a, N.make_batches(a.ids.map(len).tolist(), 2048)), z)
    gs = N.golden_scores(al.iloc[16:18], al.iloc[:16], smol, cache=tmp_path, progress=False)
    zero_file = pd.read_parquet(next(tmp_path.rglob('zero_shot.parquet'))).zero_shot.values
    assert np.array_equal(zero_file, z)  # the job's zero-shot is the same numbers
    direct = [N.golden_score(N.one_shot(smol, ids, a), z) for ids in N.encode_examples(al.iloc[16:18], smol.tokenizer, bos=True).ids]
    assert gs.golden.astype(float).tolist() == direct  # the candidate scored by the job and by hand: identical golden scores

def test_kmeans_anchors_nearest_in_blocks_equals_full_argmin():
    rng = np.random.default_rng(1)
    c, x = rng.normal(size=(20, 16)), rng.normal(size=(3000, 16))
    assert (N._nearest(c, x, rows=128) == ((c[:, None, :] - x[None]) ** 2).sum(-1).argmin(1)).all()
