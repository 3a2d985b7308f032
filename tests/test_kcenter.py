import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import json
from functools import partial
import numpy as np, pandas as pd, pytest, torch
from select_nb.data.load import load
from select_nb.models.tiny import tiny_lm
from select_nb.select.kcenter import kcenter_greedy, kcenter_matrix, coverage_curve
from select_nb.core.records import usable
from select_nb.methods.diverse_evol import lora_train, diverse_evol
from select_nb.jobs.kcenter import KcenterSettings, kcenter_job

def brute(x, k, pool=(), start=None):
    "k-center from the definition, float64, every distance recomputed each step."
    x, chosen, picks = np.asarray(x, dtype=np.float64), list(pool), []
    if not chosen: chosen, picks = [start], [start]
    while len(picks) < k:
        d = np.sqrt(((x[:, None, :] - x[None, chosen, :]) ** 2).sum(-1)).min(1)
        d[chosen] = -1
        i = int(np.argmax(d)); chosen.append(i); picks.append(i)
    return picks

@pytest.mark.parametrize('n,d,k,seed', [(40, 2, 12, 0), (150, 32, 30, 1), (250, 384, 25, 2)])
def test_same_picks_as_brute_force(n, d, k, seed):
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(seed))
    r = kcenter_greedy(x, k, seed=seed)
    assert r.picks == brute(x, k, start=r.picks[0])
    assert kcenter_matrix(x, k, seed=seed) == r.picks
    pool = list(range(3, n, 7))
    assert kcenter_greedy(x, k, pool=pool, chunk_elems=n * 2).picks == brute(x, k, pool)
    assert kcenter_matrix(x, k, pool=pool) == brute(x, k, pool)

def test_ties_lowest_index_and_duplicates():
    grid = torch.tensor([[i, j] for i in range(5) for j in range(5)], dtype=torch.float32)
    x = torch.cat([grid, grid])
    r = kcenter_greedy(x, 12, pool=[0])
    assert r.picks == brute(x, 12, [0]) and len(set(r.picks)) == 12
    assert r.picks[0] == 24
    assert not kcenter_greedy(torch.cat([x, x]), 49).min_dist.isnan().any()

def test_seeded_start_is_deterministic():
    x = torch.randn(100, 5, generator=torch.Generator().manual_seed(0))
    assert kcenter_greedy(x, 10, seed=4).picks == kcenter_greedy(x, 10, seed=4).picks
    assert kcenter_greedy(x, 0).picks == []

def test_bad_input():
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match='outside the pool'): kcenter_greedy(x, 5)
    with pytest.raises(ValueError, match='out of range'): kcenter_greedy(x, 1, pool=[4])
    with pytest.raises(ValueError, match='NaN'): kcenter_greedy(torch.tensor([[float('nan'), 0.]]), 1)
    with pytest.raises(ValueError, match='2-D'): kcenter_greedy(torch.zeros(4), 1)

def test_coverage_curve_matches_radius():
    x = torch.randn(300, 6, generator=torch.Generator().manual_seed(5))
    r = kcenter_greedy(x, 20)
    cov = coverage_curve(x, r.picks)
    assert np.allclose(cov[:-1], r.radius[1:], atol=1e-4) and abs(cov[-1] - r.coverage) < 1e-4
    assert np.all(np.diff(cov) <= 1e-6)

@pytest.fixture(scope='module')
def alpaca(): return load('alpaca', limit=60)

def test_lora_train_learns_and_leaves_base(alpaca):
    tiny = tiny_lm()
    before = {k: v.clone() for k, v in tiny.model.state_dict().items()}
    lm, info = lora_train(tiny, alpaca.iloc[:6], epochs=6, lr=1e-2, batch_size=4, max_length=160)
    assert info['train_loss_last'] < info['train_loss_first']
    assert all(torch.equal(v, tiny.model.state_dict()[k]) for k, v in before.items())

def test_diverse_evol_loop(alpaca):
    tr = partial(lora_train, max_steps=1, batch_size=4, max_length=160)
    sel, hist = diverse_evol(alpaca, tiny_lm(), tr, init=6, k=3, rounds=2, max_length=160, progress=False)
    assert len(sel) == 12 and sel.position.nunique() == 12
    assert sel['round'].tolist() == [0] * 6 + [1] * 3 + [2] * 3
    assert usable(alpaca)[sel.position].all()
    assert list(hist['round']) == [0, 1]
    with pytest.raises(ValueError, match='usable'): diverse_evol(alpaca, tiny_lm(), tr, init=60, k=10, rounds=1)

def test_kcenter_job_writes_run_folder(tmp_path):
    res = kcenter_job(KcenterSettings(data='alpaca', out=tmp_path/'run', n=8, limit=40), progress=False)
    out = tmp_path/'run'
    for f in ['scores.parquet', 'selected.json', 'summary.json', 'coverage.png', 'projection.png']: assert (out/f).exists()
    sel = json.loads((out/'selected.json').read_text())
    assert len(sel) == 8 and set(sel[0]) == {'instruction', 'input', 'output'}
    sc = pd.read_parquet(out/'scores.parquet')
    assert sc.selected.sum() == 8 and sorted(sc.pick_rank.dropna()) == list(range(1, 9))
    assert json.loads((out/'summary.json').read_text())['selected'] == 8
