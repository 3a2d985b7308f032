"Fast tests of the SCAR ranker and its data: tiny models, a few real records."
import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import json
import numpy as np, pandas as pd, pytest, torch
from transformers import AutoTokenizer, BertConfig, BertModel
from select_nb.models.registry import model_path
from select_nb.models.tiny import tiny_lm
from select_nb.methods.scar.data import origin_table, rewrite, chat_generate
from select_nb.methods.scar.quality import build_triples, triple_pairs, quality_judge, mtld, ttr, style_metrics, digit_ids
from select_nb.methods.scar.ranker import ScarConfig, ScarRanker, scar_loss
from select_nb.methods.scar.train import triple_scores, pairwise_accuracy, split_triples, run_triples, train_ranker, save_ranker, load_ranker, select_mask
from select_nb.jobs.scar import ScarRankSettings, ScarTrainSettings, scar_rank_job


@pytest.fixture(scope='module')
def tok(): return AutoTokenizer.from_pretrained(model_path('minilm-l6'))

def _ranker(tok, seed=0):
    torch.manual_seed(seed)
    enc = BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=512))
    return ScarRanker(ScarConfig(encoder='tiny-bert'), enc, tok).eval()

@pytest.fixture(scope='module')
def tasks(): return origin_table(limit=10)


def test_origin_table_human_is_target(tasks):
    from select_nb.data.load import load
    assert list(tasks.human) == [r.strip() for r in load('self-instruct', limit=10).response]
    with pytest.raises(ValueError, match='target'): origin_table('alpaca-eval-gpt4', limit=2)


def test_mtld_ttr_by_hand():
    assert mtld("a a b b") == 2.0 and mtld("a b a b") == 4.0
    assert np.isnan(mtld("")) and np.isnan(ttr(""))
    assert ttr("the cat and the dog") == pytest.approx(0.8)
    m = style_metrics(["a a b b", "a b a b"], ppl=[2., 4.])
    assert m['mtld_mean'] == 3.0 and m['mtld_std'] == 1.0 and m['ppl_mean'] == 3.0


def test_generate_and_judge_batched_equals_single(tasks, tmp_path):
    lm = tiny_lm()
    prompts = ["Add 2 and 3.", "Name a colour of the sky on a clear day, please."]
    assert chat_generate(lm, prompts, 4) == [chat_generate(lm, [p], 4)[0] for p in prompts]
    rows = tasks.iloc[:3].assign(response=tasks.direct[:3])
    q = quality_judge(rows, lm, batch_size=3, cache=False, progress=False)
    q1 = np.concatenate([quality_judge(rows.iloc[[i]], lm, cache=False, progress=False) for i in range(3)])
    np.testing.assert_allclose(q, q1, atol=1e-3)
    assert len(digit_ids(lm.tokenizer)) == 10
    r = rewrite(tasks.iloc[:2], lm, max_new_tokens=3, cache=tmp_path, progress=False)
    assert rewrite(tasks.iloc[:2], lm, max_new_tokens=3, cache=tmp_path, progress=False) == r  # from the cache
    assert len(next(tmp_path.glob('*.jsonl')).read_text().splitlines()) == 2


def test_quality_floor_drops_pairs(tasks):
    tr = build_triples(tasks, n_referenced=0, quality=lambda rows: (rows.response.str.len() > 40) * 9.0, floor=5)
    assert (tr.human.isna() == (tasks.human.str.len() <= 40)).all()
    assert len(triple_pairs(tr)) == int((tr.human.notna() & tr.direct.notna()).sum())


def test_loss_by_hand():
    v = lambda x: torch.tensor([[x, 0.]])
    out = {'direct': (torch.tensor([1.]), v(1.), v(0.)), 'referenced': (torch.tensor([.8]), v(0.), v(1.)),
           'human': (torch.tensor([0.]), v(3.), v(2.))}
    present = {k: torch.tensor([True]) for k in out}
    assert scar_loss(out, present).item() == pytest.approx(0.4, abs=1e-4)


def test_ranker_padding_invariant_and_roundtrip(tok, tasks, tmp_path):
    rk = _ranker(tok)
    tr = build_triples(tasks, n_referenced=0, quality=None)
    a = triple_scores(rk, tr, batch_size=3).values
    b = triple_scores(rk, tr, batch_size=10).values
    np.testing.assert_allclose(a, b, atol=1e-5)  # NaN where absent, in both
    save_ranker(rk, tmp_path/'r')
    np.testing.assert_allclose(triple_scores(load_ranker(tmp_path/'r', 'cpu'), tr).values, a, atol=1e-5)


def test_training_learns_toy_order_and_keeps_best(tok, tasks):
    tr = build_triples(tasks, n_referenced=0, quality=None)
    toy = tr.assign(direct="Certainly! Here you go: " + tr.human + " Hope this helps!", referenced=tr.human + " Hope this helps!")
    toy = pd.concat([toy] * 3, ignore_index=True)
    sp = {'train': toy, 'val': toy.iloc[:10], 'test': toy.iloc[:10]}
    rk, hist = train_ranker(sp, epochs=3, batch_size=10, lr=1e-3, ranker=_ranker(tok), progress=False)
    assert hist.val_acc.max() > hist.val_acc[0]
    assert pairwise_accuracy(triple_scores(rk, sp['val'])) == hist.val_acc.max()
    s = split_triples(tr, seed=1)
    assert [len(s[k]) for k in ('train', 'val', 'test')] == [8, 1, 1]


def test_select_mask():
    s = [0.1, 0.9, np.nan, 0.5]
    assert select_mask(s, ratio=0.67).tolist() == [False, True, False, True]   # int(4 * 0.67) = 2 of the 4 input records
    assert select_mask(s, ratio=1.0).tolist() == [True, True, False, True]     # 4 asked, 3 scored: at most those
    assert select_mask(s, n=1).tolist() == [False, True, False, False]
    assert select_mask(s, threshold=0.3).tolist() == [False, True, False, True]
    with pytest.raises(ValueError, match='ratio, n or threshold'): select_mask(s)
    with pytest.raises(ValueError, match='exactly one'): select_mask(s, ratio=0.5, n=1)


def test_rank_job_writes_output_folder(tok, tmp_path):
    rk = _ranker(tok)
    summ = scar_rank_job(ScarRankSettings(data='self-instruct-text-davinci-002', ranker=rk, n=5, limit=20, out=tmp_path), progress=False)
    assert summ['n_selected'] == 5
    sc = pd.read_parquet(tmp_path/'scores.parquet')
    assert len(sc) == 20 and sc.selected.sum() == 5
    assert json.loads((tmp_path/'summary.json').read_text())['style']['selected']['ttr_mean'] > 0
    assert (tmp_path/'selected.jsonl').exists() and (tmp_path/'scores.png').exists()


def test_perplexity_features_and_frozen_training(tok, tasks, tmp_path):
    "A ranker with perplexity features needs them, reads the engine's numbers, trains frozen, and saves / loads."
    from select_nb.methods.scar.train import add_ppl, ppl_features
    from select_nb.run.executors import score
    from select_nb.core.records import record_id
    torch.manual_seed(0)
    enc = BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=512))
    rk = ScarRanker(ScarConfig(encoder='tiny-bert', ppl_model='smollm2-135m', pooling='mean'), enc, tok).eval()
    with pytest.raises(ValueError, match='perplexity'): rk(['Say hi.'], ['Hi.'])
    tr = add_ppl(build_triples(tasks.iloc[:6], n_referenced=0, quality=None))
    rows = tr.assign(response=tr.direct, error=None)
    rows['id'] = [record_id(i, x, r) for i, x, r in zip(rows.instruction, rows.input, rows.response)]
    ref = score(rows, model='smollm2-135m', progress=False)
    np.testing.assert_allclose(tr.lpc_direct, np.log(ref.ppl_cond), rtol=1e-6)
    np.testing.assert_allclose(ppl_features(rows)[:, 1], np.log(ref.ppl_uncond), rtol=1e-6)
    before = {k: v.clone() for k, v in rk.encoder.state_dict().items()}
    sp = {'train': tr, 'val': tr.iloc[:3], 'test': tr.iloc[3:]}
    rk2, hist = train_ranker(sp, epochs=2, batch_size=3, freeze_encoder=True, ranker=rk, progress=False)
    assert all(torch.equal(before[k], v) for k, v in rk2.encoder.state_dict().items())  # the encoder is untouched
    assert rk2.memo is None and len(hist) == 3
    save_ranker(rk2, tmp_path/'r')
    np.testing.assert_allclose(triple_scores(load_ranker(tmp_path/'r', 'cpu'), tr).values, triple_scores(rk2, tr).values, atol=1e-5)


def test_train_job_end_to_end(tmp_path):
    "`scar train` on 20 real tasks (no rewrites, no judge, one epoch): the ranker folder, the summary and its held-out parts."
    from select_nb.jobs.scar import scar_train_job
    s = scar_train_job(ScarTrainSettings(out=tmp_path, recipe='self-instruct', n_referenced=0, epochs=1, limit=20, auc_n=0,
                                         heldout=('self-instruct-text-davinci-002', 'self-instruct-text-davinci-001')), progress=False)
    assert (s['n_tasks'], s['split'], s['config']['ppl_model']) == (20, {'train': 16, 'val': 2, 'test': 2}, 'smollm2-135m')
    assert set(s['heldout']) == {f'{src}:{p}' for src in ('self-instruct-text-davinci-002', 'self-instruct-text-davinci-001')
                                 for p in ('test', 'unseen', 'all')}
    assert s['heldout']['self-instruct-text-davinci-002:unseen']['n_tasks'] <= 4 <= s['heldout']['self-instruct-text-davinci-002:all']['n_tasks']
    assert all(0 <= v['acc'] <= 1 for v in s['heldout'].values() if v['n_tasks'])
    assert {'ranker', 'triples.parquet', 'history.csv', 'summary.json', 'training.png'} <= {p.name for p in tmp_path.iterdir()}
    assert load_ranker(tmp_path/'ranker', 'cpu').config.ppl_model == 'smollm2-135m'


def test_paper_triples_from_a_partial_cache(tmp_path):
    "Generated answers are read back without a model; real GPT-3 rows join; a split never separates a task's rows."
    from select_nb.methods.scar.data import human_pool, direct, paper_triples, cached_answers, REAL_DIRECT
    lm = tiny_lm()
    pool = human_pool()
    si = pool[pool.source == 'self-instruct']
    direct(si.iloc[:3], lm, max_new_tokens=4, cache=tmp_path, progress=False)
    rewrite(si.iloc[:2], lm, max_new_tokens=4, cache=tmp_path, progress=False)
    assert [a is None for a in cached_answers(si.iloc[:4], 'direct', lm.name, 4, tmp_path)] == [False] * 3 + [True]
    pt = paper_triples(lm.name, max_new_tokens=4, cache=tmp_path, pool=si)
    gen = pt[pt.direct_source == f'gen:{lm.name}']
    assert list(gen.task) == [0, 1, 2] and gen.referenced.notna().sum() <= 2
    assert pt[pt.direct_source.isin(REAL_DIRECT)].referenced.isna().all()
    sp = split_triples(pt, seed=1)
    tasks = [set(v.task) for v in sp.values()]
    assert not (tasks[0] & tasks[1]) and not (tasks[0] & tasks[2]) and not (tasks[1] & tasks[2])
    assert sum(len(v) for v in sp.values()) == len(pt)


def test_form_projection_trains_with_frozen_encoder(tok, tasks):
    "Frozen encoder: without the projection the form vectors never change; with it they do, and the encoder stays put."
    tr = build_triples(tasks.iloc[:6], n_referenced=0, quality=None)
    tr['referenced'] = tr.human + ' Hope this helps!'
    sp = {'train': tr, 'val': tr.iloc[:3], 'test': tr.iloc[3:]}
    def forms(rk): return run_triples(rk, tr)[0]['direct'][2].detach().clone()
    for proj in (False, True):
        torch.manual_seed(0)
        enc = BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                                   intermediate_size=64, max_position_embeddings=512))
        rk = ScarRanker(ScarConfig(encoder='tiny-bert', form_proj=proj), enc, tok)
        before = forms(rk.eval())
        rk2, _ = train_ranker(sp, epochs=2, batch_size=3, freeze_encoder=True, ranker=rk, progress=False)
        assert torch.allclose(before, forms(rk2), atol=1e-6) != proj


def test_packaged_ranker_ranks_without_ranker_argument(tmp_path):
    "`select-nb scar rank --data ...` works out of the box: the shipped heads over the packaged MiniLM and SmolLM2 features."
    from select_nb.cli import main
    from select_nb.jobs.scar import DEFAULT_RANKER
    from pathlib import Path
    heads = Path(DEFAULT_RANKER)/'heads.safetensors'
    assert heads.exists() and heads.stat().st_size < 5e6
    main(['scar', 'rank', '--data', 'alpaca', '--limit', '8', '--top-k', '3', '--out', str(tmp_path/'r')])
    sc = pd.read_parquet(tmp_path/'r'/'scores.parquet')
    assert len(sc) == 8 and sc.selected.sum() == 3 and sc.scar_score.notna().all()
    assert json.loads((tmp_path/'r'/'summary.json').read_text())['ranker'] == 'packaged default'
