"Many processes opening one fresh score cache at once: the index is set up by one of them, none fails."
import multiprocessing as mp
from select_nb.store.score_cache import ScoreCache

def _open(root, barrier):
    barrier.wait()  # all at the same moment, on a folder with no index yet
    ScoreCache({'model': 'm', 'x': 1}, root)

def test_simultaneous_opens_of_a_fresh_cache(tmp_path):
    failed = 0
    for r in range(8):
        b = mp.get_context('fork').Barrier(6)
        ps = [mp.get_context('fork').Process(target=_open, args=(tmp_path/str(r), b)) for _ in range(6)]
        for p in ps: p.start()
        for p in ps: p.join(120)
        failed += sum(p.exitcode != 0 for p in ps)
    assert failed == 0
