"The one on-disk store (`store/03_store`): a folder per key, whole-file writes that survive a kill, the lock, merging, JSON Lines logs."
import json, multiprocessing as mp, os, time
import pandas as pd
from select_nb.store.store import Store, append_records, key_hash, read_records, write_atomic

FORK = mp.get_context('fork')

def test_same_key_same_folder_other_key_other_folder(tmp_path):
    key = {'model': 'm', 'max_length': 64, 'prompts': ['{instruction}\n']}
    a = Store('scores', 'm', key=key, root=tmp_path)
    assert Store('scores', 'm', key=dict(reversed(list(key.items()))), root=tmp_path).path == a.path  # field order does not matter
    assert a.path == tmp_path/'m'/key_hash(key) and json.loads((a.path/'key.json').read_text()) == key
    others = {Store('scores', 'm', key={**key, 'max_length': n}, root=tmp_path).path for n in (128, 256)}
    assert len(others) == 2 and a.path not in others
    assert Store('scores', 'other', key=key, root=tmp_path).path != a.path  # another sub-folder
    assert Store('embeddings', 'm', 'text-v1', root=tmp_path).path == tmp_path/'m'/'text-v1'  # plain folders, no key
    named = Store('embeddings', key='m/text-v1', root=tmp_path)  # a readable key: its parts are the folders, no key.json
    assert named.path == tmp_path/'m'/'text-v1' and named.key == 'm/text-v1' and not (named.path/'key.json').exists()

def test_default_folder_is_under_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('SELECT_NB_CACHE', str(tmp_path/'cache'))
    assert Store('nuggets', 'm', 'k').path == tmp_path/'cache'/'nuggets'/'m'/'k'

def _dies_writing(path):
    def dies(f): f.write(b'PAR1 half a part'); f.flush(); os._exit(9)  # as under kill -9: no cleanup runs
    write_atomic(path, dies)

def test_a_write_killed_halfway_leaves_no_part(tmp_path):
    s = Store('scores', root=tmp_path)
    first = s.add(pd.DataFrame({'id': ['a'], 'v': [1.0]}))
    for target in (s.path/s.part_name(), first):  # a new part, and one written over an existing file
        p = FORK.Process(target=_dies_writing, args=(target,)); p.start(); p.join(60)
        assert p.exitcode == 9
    assert len(list(s.path.glob('.part-*.tmp'))) == 2  # what the kills left ...
    assert s.parts() == [first]  # ... is never a part, and the old file is whole
    assert s.table(['id'], ['id', 'v']).v.tolist() == [1.0]
    second = s.add(pd.DataFrame({'id': ['a', 'b'], 'v': [2.0, 3.0]}))
    assert s.parts() == [first, second] and s.merge(['id']) is not None  # the leftovers do not get in the way
    assert s.table(['id'], ['id', 'v']).v.tolist() == [2.0, 3.0]

def test_a_failing_writer_leaves_the_old_file_and_no_temporary(tmp_path):
    write_atomic(tmp_path/'f', lambda f: f.write(b'old'))
    def fails(f): f.write(b'new but half'); raise RuntimeError('disk full')
    try: write_atomic(tmp_path/'f', fails)
    except RuntimeError: pass
    assert (tmp_path/'f').read_bytes() == b'old' and [p.name for p in tmp_path.iterdir()] == ['f']

def _set_up(root, barrier, key):
    barrier.wait()  # all at the same moment, on a folder that does not exist yet
    s = Store('scores', 'm', key=key, root=root)
    with s.lock(exclusive=True, name='.setup'):  # read, pause, write: any overlap loses an increment
        n = int((s.path/'count').read_text()) if (s.path/'count').exists() else 0
        time.sleep(0.01); (s.path/'count').write_text(str(n + 1))

def test_concurrent_set_up_under_the_lock(tmp_path):
    key = {'model': 'm', 'x': 1}
    b = FORK.Barrier(8)
    ps = [FORK.Process(target=_set_up, args=(tmp_path, b, key)) for _ in range(8)]
    for p in ps: p.start()
    for p in ps: p.join(120)
    assert [p.exitcode for p in ps] == [0] * 8
    s = Store('scores', 'm', key=key, root=tmp_path)
    assert (s.path/'count').read_text() == '8' and json.loads((s.path/'key.json').read_text()) == key
    assert [p.name for p in s.path.iterdir() if p.name.endswith('.tmp')] == []

def test_lock_shared_exclusive_and_named(tmp_path):
    s = Store('x', root=tmp_path)
    with s.lock() as a, s.lock() as b:
        assert a and b  # readers share
        with s.lock(exclusive=True, wait=False) as c: assert c is False
        with s.lock(exclusive=True, wait=False, name='.setup') as d: assert d is True  # another lock file
    with s.lock(exclusive=True, wait=False) as e: assert e is True

def test_merge_keeps_the_newest_row_and_waits_for_readers(tmp_path):
    s = Store('x', root=tmp_path)
    for k in range(4): s.add(pd.DataFrame({'id': ['same', f'own{k}'], 'v': [k, k]}))
    before = s.table(['id'], ['id', 'v']).set_index('id').v.to_dict()
    assert before['same'] == 3 and len(before) == 5
    with s.lock(): assert s.merge(['id']) is None and len(s.parts()) == 4  # a reader holds the shared lock
    moved = []
    new = s.merge(['id'], moved=lambda old, n: moved.append((sorted(old), n)))
    assert s.parts() == [new] and moved[0][1] == new.name and len(moved[0][0]) == 4
    assert s.table(['id'], ['id', 'v']).set_index('id').v.to_dict() == before
    s.add(pd.DataFrame({'id': ['late'], 'v': [9]}))
    assert s.merge(['id'], max_rows=5) is None  # the merged part (5 rows) is full: one small part left, nothing to merge

def test_jsonl_log_skips_a_cut_line_and_appends_whole(tmp_path):
    log = tmp_path/'sub'/'log.jsonl'
    assert read_records(log) == [] and read_records(None) == []
    append_records(log, [['k1', 'é'], ['k2', None]])
    with open(log, 'ab') as f: f.write('["k3", "cut by a ki'.encode())
    assert read_records(log) == [['k1', 'é'], ['k2', None]]
    append_records(log, [['k3', 'whole']])
    assert read_records(log) == [['k1', 'é'], ['k2', None], ['k3', 'whole']]
    append_records(None, [['ignored', 1]])  # no log: nothing written anywhere
    assert [p.name for p in tmp_path.rglob('*') if p.is_file()] == ['log.jsonl']
