import json, os, signal, subprocess, sys, time
from pathlib import Path
import numpy as np, pandas as pd, pytest, torch
from select_nb.methods.ifd import ifd_select
from select_nb.select.facility import facility_location, similarity
from select_nb.jobs.superfilter import SuperfilterSettings, superfilter_job
from select_nb.data.load import load

def test_selection_rules():
    t = pd.DataFrame({'id': list('abcdefg'), 'ifd_ppl': [0.5, 0.9, np.nan, 1.0, 0.9, 1.3, 0.2]})
    assert list(ifd_select(t, 0.5).id) == ['b', 'e', 'a']           # ties keep input order; int(3.5) = 3
    assert list(ifd_select(t, 1.0).id) == ['b', 'e', 'a', 'g']      # IFD >= 1 (incl. exactly 1) and NaN dropped
    assert len(ifd_select(t, 0.14)) == 0                            # rounds down
    assert len(ifd_select(t, 0.05, total=52002)) == 4               # authors' fixed count, capped
    assert list(ifd_select(t, n=2).id) == ['b', 'e'] and len(ifd_select(t, n=6)) == 4   # a count, at most what qualifies
    assert len(ifd_select(t.iloc[:0], 0.5)) == 0
    assert list(ifd_select(t.rename(columns={'ifd_ppl': 'ifd_loss'}), 0.3, col='ifd_loss').id) == ['b', 'e']
    with pytest.raises(ValueError): ifd_select(t, -0.1)
    with pytest.raises(ValueError, match='exactly one'): ifd_select(t, 0.5, n=2)

def _plain_greedy(sim, k):
    best, picks = torch.zeros(sim.shape[0], dtype=sim.dtype), []
    for _ in range(k):
        g = (sim - best[:, None]).clamp(min=0).sum(0); g[picks] = -1
        j = int(g.argmax()); picks.append(j); best = torch.maximum(best, sim[:, j])
    return picks

@pytest.mark.parametrize('seed', range(4))
@pytest.mark.parametrize('kernel', ['cosine', 'euclidean'])
def test_facility_location_equals_brute_force(seed, kernel):
    g = torch.Generator().manual_seed(seed)
    e = torch.nn.functional.normalize(torch.randn(80, 6, generator=g, dtype=torch.float64), dim=1)
    S = similarity(e, kernel)
    assert facility_location(S, 20, batch=3) == _plain_greedy(S, 20)

def test_facility_location_ties_and_edges():
    S = torch.ones(5, 5, dtype=torch.float64)
    assert facility_location(S, 3) == [0, 1, 2]
    assert facility_location(S, 10) == [0, 1, 2, 3, 4]

def test_superfilter_end_to_end_on_real_records(tmp_path):
    res = superfilter_job(SuperfilterSettings(data='alpaca', out=tmp_path/'run', limit=50, ratio=0.1), progress=False)
    out = tmp_path/'run'
    assert {p.name for p in out.iterdir()} == {'scores.parquet', 'selected.json', 'summary.json', 'summary.png'}
    scores = pd.read_parquet(out/'scores.parquet')
    assert len(scores) == 50 and scores.ifd_ppl.notna().sum() >= 45
    sel = json.loads((out/'selected.json').read_text())
    assert len(sel) == res['selected'] == 5 and set(sel[0]) == {'instruction', 'input', 'output'}
    top = scores[scores.ifd_ppl < 1].sort_values('ifd_ppl', ascending=False).head(5)
    assert [r['instruction'] for r in sel] == list(top.instruction)

def test_superfilter_diversity(tmp_path):
    res = superfilter_job(SuperfilterSettings(data='alpaca', out=tmp_path/'d', limit=50, ratio=0.4, diversity=6), progress=False)
    assert res['selected'] == 6

def _run(args, cache, **kw):
    env = {**os.environ, 'SELECT_NB_CACHE': str(cache), 'HF_HUB_OFFLINE': '1'}
    return subprocess.Popen([str(Path(sys.executable).parent/'select-nb'), *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)

def test_killed_run_resumes_with_the_same_selection(tmp_path):
    args = ['superfilter', '--data', 'alpaca', '--limit', '40', '--ratio', '0.1']
    models = Path(os.environ.get('SELECT_NB_CACHE', Path.home()/'.cache'/'select_nb'))/'models'
    for c in ('killed', 'clean'):  # share the converted model, not the scores
        (tmp_path/c).mkdir(); (tmp_path/c/'models').symlink_to(models)
    p = _run(args + ['--out', str(tmp_path/'o1')], tmp_path/'killed')
    parts = lambda: list((tmp_path/'killed'/'scores').rglob('*.parquet'))
    t0 = time.time()
    while not parts() and time.time() - t0 < 300 and p.poll() is None: time.sleep(0.2)
    p.send_signal(signal.SIGKILL); p.wait()
    n_before = len(pd.concat([pd.read_parquet(f) for f in parts()]))
    assert 0 < n_before < 80  # killed halfway: some sequences saved, not all
    assert _run(args + ['--out', str(tmp_path/'o1')], tmp_path/'killed').wait() == 0
    assert _run(args + ['--out', str(tmp_path/'o2')], tmp_path/'clean').wait() == 0
    a, b = (json.loads((tmp_path/o/'selected.json').read_text()) for o in ('o1', 'o2'))
    assert a == b and len(a) == 4

def test_sparse_knn_facility_location_matches_dense_on_real_embeddings():
    "Real MiniLM embeddings of Alpaca records: every neighbour kept gives the dense picks; fewer, the sparsified dense picks."
    import torch
    from select_nb.engine.embed import embed_sentences, record_texts
    from select_nb.select.facility import facility_location, knn_graph, similarity
    emb = embed_sentences(record_texts(load('alpaca', limit=120)), progress=False).double()
    assert facility_location(knn_graph(emb, 120, rows=50), 25) == facility_location(similarity(emb), 25)
    g = knn_graph(emb, 15, rows=50)
    assert g.nnz == 120 * 15
    assert facility_location(g, 25) == facility_location(torch.from_numpy(g.toarray()), 25)

def test_superfilter_d_with_a_knn_graph(tiny):
    from select_nb.methods.ifd import superfilter_d
    from select_nb.run.executors import score
    t = load('alpaca', limit=60)
    s = score(t, model=tiny, cache=False, progress=False)
    dense, sparse = superfilter_d(t, scores=s, ifd_num=40, fla_num=10), superfilter_d(t, scores=s, ifd_num=40, fla_num=10, knn=40)
    assert list(dense.id) == list(sparse.id) and len(superfilter_d(t, scores=s, ifd_num=40, fla_num=10, knn=5)) == 10
