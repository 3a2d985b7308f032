import json
import numpy as np, pandas as pd, pytest
from scipy import stats
from select_nb.methods.consistency import pair_agreement, rank_agreement, agreement_matrix, topk_overlap, _select_ids, filter_cost, plot_distributions, plot_agreement, plot_overlap, ladder_scores
from select_nb.jobs.consistency import ConsistencySettings, consistency_job

def _long(n=60, seed=0):
    "Three synthetic models scoring the same n records: 'b' a noisy copy of 'a', 'c' unrelated."
    g = np.random.default_rng(seed); a = g.uniform(0.2, 1.1, n)
    cols = {'a': a, 'b': a + g.normal(0, 0.05, n), 'c': g.uniform(0.2, 1.1, n)}
    return pd.concat([pd.DataFrame({'id': [f"r{i}" for i in range(n)], 'model': m, 'dataset': 'toy', 'ifd_ppl': v,
                                    'ppl_cond': np.exp(3 * v)}) for m, v in cols.items()], ignore_index=True)

def test_pair_agreement_matches_scipy_and_is_seeded():
    g = np.random.default_rng(3); x = g.normal(size=100); y = x + g.normal(size=100)
    r = pair_agreement(x, y, n_boot=200, seed=1)
    assert r['spearman'] == pytest.approx(stats.spearmanr(x, y).statistic)
    assert r['kendall'] == pytest.approx(stats.kendalltau(x, y).statistic)
    assert r['spearman_lo'] < r['spearman'] < r['spearman_hi'] and r['kendall_lo'] < r['kendall'] < r['kendall_hi']
    assert r == pair_agreement(x, y, n_boot=200, seed=1)
    assert pair_agreement(x, np.exp(x), n_boot=20)['spearman'] == pytest.approx(1.0)

def test_rank_agreement_tables():
    ag = rank_agreement(_long(), n_boot=100)
    assert len(ag) == 2 * 3  # 2 metrics x 3 pairs
    ab = ag[(ag.model_a == 'a') & (ag.model_b == 'b') & (ag.metric == 'ifd_ppl')].iloc[0]
    ac = ag[(ag.model_a == 'a') & (ag.model_b == 'c') & (ag.metric == 'ifd_ppl')].iloc[0]
    assert ab.spearman > 0.9 and abs(ac.spearman) < 0.4
    m = agreement_matrix(ag, 'toy', 'ifd_ppl', 'kendall')
    assert list(m.index) == ['a', 'b', 'c'] and np.allclose(m.values, m.values.T) and np.allclose(np.diag(m.values), 1)

def test_missing_scores_are_dropped_pairwise():
    t = _long(); t.loc[(t.model == 'b') & (t.id == 'r0'), 'ifd_ppl'] = np.nan
    ag = rank_agreement(t, cols=('ifd_ppl',), n_boot=20)
    assert set(ag.n) == {59}

def test_selection_rule_and_overlap():
    s = pd.DataFrame({'id': list('abcdef'), 'ifd_ppl': [0.5, 1.0, np.nan, 0.9, 1.4, 0.7]})
    assert list(_select_ids(s, 0.5)) == ['d', 'f', 'a']  # IFD >= 1 and NaN dropped, int(6 * 0.5) = 3
    assert list(_select_ids(s, 0.1)) == []
    ov = topk_overlap(_long())
    assert len(ov) == 3 * 3 and set(ov.k_a) == {3, 6, 9}
    same = ov[(ov.model_a == 'a') & (ov.model_b == 'b')]
    assert (same.overlap >= ov[(ov.model_a == 'a') & (ov.model_b == 'c')].overlap.values).all()
    assert np.allclose(ov.chance, ov.k_a / 60)

def test_filter_cost():
    c = pd.DataFrame({'dataset': ['x', 'y', 'x', 'y'], 'model': ['w', 'w', 's', 's'], 'records': 10, 'fresh': [10, 10, 10, 0],
                      'load_s': [1., 0., 4., 0.], 'score_s': [1., 1., 10., 0.1], 'tokens': [1000, 1000, 1000, 0]})
    f = filter_cost(c)
    assert list(f.model) == ['w', 's'] and list(f.load_s) == [1., 4.]
    assert f.tok_s.tolist() == pytest.approx([1000, 1000 / 10.1]) and f.slowdown.tolist() == pytest.approx([1, 10.1])

def test_plots_take_tables():
    t = _long(); ag = rank_agreement(t, n_boot=20)
    assert len(plot_distributions(t).axes) == 2 and plot_distributions(t).axes[0].get_yscale() == 'log'
    assert len(plot_agreement(ag).axes) == 2 and len(plot_overlap(topk_overlap(t)).axes) == 1

def test_job_on_real_records(tmp_path):
    s = consistency_job(ConsistencySettings(data='alpaca,dolly', models='smollm2-135m,gemma3-270m', limit=10, out=tmp_path, n_boot=50), progress=False)
    names = {p.name for p in tmp_path.iterdir()}
    assert {'scores.parquet', 'agreement.csv', 'overlap.csv', 'cost.csv', 'summary.json', 'distributions.png',
            'spearman.png', 'kendall.png', 'overlap.png', 'cost.png'} <= names
    sc = pd.read_parquet(tmp_path/'scores.parquet')
    assert len(sc) == 2 * 2 * 10 and list(sc.model.unique()) == ['smollm2-135m', 'gemma3-270m']
    assert sc.groupby(['dataset', 'model']).id.apply(tuple).unstack().nunique(axis=1).eq(1).all()  # same records per model
    assert json.loads((tmp_path/'summary.json').read_text())['headline'] == s['headline']
    assert set(s['headline']) == {'alpaca', 'dolly'}
