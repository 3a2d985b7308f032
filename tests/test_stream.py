"Streaming scoring (`run/05a_stream`) and the sharded score cache (`store/03a_score_cache`): equality with the in-memory path, the index, concurrent runs, resume."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pandas as pd, pyarrow as pa, pyarrow.parquet as pq, pytest
from select_nb.core.env import data_dir
from select_nb.data.load import load
from select_nb.data.formats import read_rows
from select_nb.models.tiny import tiny_lm
from select_nb.core.settings import ScoreSettings
from select_nb.run.executors import score
from select_nb.store.score_cache import score_cache
from select_nb.run.stream import Stream
import select_nb.store.score_cache as sc

NUM = ['nll_cond', 'nll_uncond', 'ppl_cond', 'ppl_uncond', 'ifd_ppl', 'ifd_loss']
ROOT = Path(__file__).resolve().parent.parent

@pytest.fixture(scope='module')
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('tiny')
    lm = tiny_lm(); lm.model.save_pretrained(d); lm.tokenizer.save_pretrained(d)
    return str(d)

@pytest.fixture(scope='module')
def alpaca_jsonl(tmp_path_factory):
    rows = read_rows(data_dir()/'alpaca/alpaca_random_9k.json')[:90]
    rows += [rows[4], {'instruction': 'Say nothing.', 'output': ' '}]  # a duplicate across pieces, an empty response
    p = tmp_path_factory.mktemp('data')/'a.jsonl'; p.write_text(''.join(json.dumps(r) + '\n' for r in rows))
    return p

def _same(a, b):
    assert list(a.id) == list(b.id) and list(a.status) == list(b.status)
    assert a.n_prompt.tolist() == b.n_prompt.tolist() and a.n_response.tolist() == b.n_response.tolist()
    for c in NUM: assert ((a[c] - b[c]).abs().fillna(0) <= 1e-6 * (1 + b[c].abs().fillna(0))).all(), c

def test_stream_equals_in_memory_on_jsonl_and_parquet(tmp_path, alpaca_jsonl, tiny):
    whole = score(load(alpaca_jsonl), model=tiny, cache=False, progress=False)
    score(alpaca_jsonl, executor=Stream(tmp_path/'s.parquet', chunk_size=25, cache=False, progress=False), model=tiny)
    s = pd.read_parquet(tmp_path/'s.parquet'); _same(s, whole)
    assert list(s.status[-2:]) == ['duplicate', 'empty_response']
    pq.write_table(pa.Table.from_pylist([json.loads(l) for l in alpaca_jsonl.read_text().splitlines()]), tmp_path/'a.parquet')
    score(tmp_path/'a.parquet', executor=Stream(tmp_path/'p.parquet', chunk_size=40, cache=False, progress=False), model=tiny)
    _same(pd.read_parquet(tmp_path/'p.parquet'), whole)

def test_stream_conversations_equal_score_turns(tmp_path, tiny):
    qs = {q['question_id']: q['turns'] for q in read_rows(data_dir()/'eval/mt_bench_80.jsonl')}
    rows = [{'messages': [{'role': 'user', 'content': qs[r['question_id']][0]}, {'role': 'assistant', 'content': r['choices'][0]['turns'][0]},
                          {'role': 'user', 'content': qs[r['question_id']][1]}, {'role': 'assistant', 'content': r['choices'][0]['turns'][1]}]}
            for r in read_rows(data_dir()/'eval/mt_bench_reference_gpt4.jsonl')[:8]]
    (tmp_path/'c.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    whole, turns = score(load(tmp_path/'c.jsonl'), model=tiny, turns=True, cache=False, progress=False)
    res = score(tmp_path/'c.jsonl', executor=Stream(tmp_path/'c.parquet', chunk_size=3, cache=False, progress=False), model=tiny)
    _same(pd.read_parquet(tmp_path/'c.parquet'), whole)
    per_turn = pd.read_parquet(tmp_path/'c.turns.parquet')
    assert res['turns'] == len(turns) and list(per_turn.id) == list(turns.id)

def test_cache_lookup_reads_only_the_parts_it_needs(tmp_path, alpaca_jsonl, tiny, monkeypatch):
    monkeypatch.setattr(sc, 'SHARD_ROWS', 50)  # a piece's 60 rows make a full shard, as 10,000 records' do at scale
    score(alpaca_jsonl, executor=Stream(tmp_path/'s.parquet', chunk_size=30, cache=tmp_path/'cache', progress=False), model=tiny)
    store = score_cache(tiny, cache=tmp_path/'cache')
    assert len(store.parts()) == 3 and len(store.read()) == 2 * 90  # 90 scorable records, two passes each
    read = []
    monkeypatch.setattr(sc, '_read_part', lambda path, ids, real=sc._read_part: read.append(path.name) or real(path, ids))
    ids = load(alpaca_jsonl).id[:3]
    got = store.lookup(ids)
    assert sorted(zip(got.id, got['pass'])) == sorted((i, p) for i in ids for p in ('cond', 'uncond'))
    assert len(read) == 1  # the first piece's shard only
    again = []  # a rerun scores nothing: every row comes from the cache
    monkeypatch.setattr('select_nb.engine.score.pass_nll', lambda *a: again.append(1))
    score(alpaca_jsonl, executor=Stream(tmp_path/'s2.parquet', chunk_size=30, cache=tmp_path/'cache', progress=False), model=tiny)
    assert again == []
    _same(pd.read_parquet(tmp_path/'s2.parquet'), pd.read_parquet(tmp_path/'s.parquet'))

def _cli(*args, cache, **kw):
    env = {**os.environ, 'SELECT_NB_CACHE': str(cache), 'HF_HUB_OFFLINE': '1', 'PYTHONPATH': str(ROOT)}
    return subprocess.Popen([sys.executable, '-c', 'from select_nb.cli import main; main()', 'score', *map(str, args)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)

def test_concurrent_runs_share_one_cache(tmp_path, alpaca_jsonl, tiny_dir):
    args = ['--data', alpaca_jsonl, '--limit', 40, '--model', tiny_dir, '--dtype', 'fp32', '--chunk-size', 15, '--batch-tokens', 512]
    procs = [_cli(*args, '--out', tmp_path/f'{k}.parquet', cache=tmp_path/'cache') for k in range(2)]
    for p in procs: assert p.wait(300) == 0, p.stderr.read()[-2000:]
    assert _cli(*args, '--out', tmp_path/'fresh.parquet', cache=tmp_path/'fresh-cache').wait(300) == 0
    fresh = pd.read_parquet(tmp_path/'fresh.parquet')
    for k in range(2): _same(pd.read_parquet(tmp_path/f'{k}.parquet'), fresh)
    from select_nb.models.lm import load_lm
    store = score_cache(load_lm(tiny_dir, dtype='fp32'), cache=tmp_path/'cache'/'scores')
    assert len(store.lookup(fresh.id)) == 2 * 40  # every row indexed, whichever run wrote it

def test_killed_stream_resumes_from_finished_pieces(tmp_path, alpaca_jsonl, tiny_dir):
    args = ['--data', alpaca_jsonl, '--model', tiny_dir, '--dtype', 'fp32', '--chunk-size', 10, '--out', tmp_path/'s.parquet']
    p, parts = _cli(*args, cache=tmp_path/'cache', start_new_session=True), tmp_path/'s.parquet.parts'
    t0 = time.time()
    while len(list(parts.glob('scores-*.parquet'))) < 2 and time.time() - t0 < 300 and p.poll() is None: time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    done = {f.name: f.stat().st_mtime_ns for f in parts.glob('scores-*.parquet')}
    assert 2 <= len(done) < 10 and not (tmp_path/'s.parquet').exists()
    # the rerun must not rescore a finished piece
    res = subprocess.run([sys.executable, '-c', f"""
import select_nb.run.stream as st, sys
seen = []
real = st.piece_rows
st.piece_rows = lambda t, *a, **kw: seen.append(int(t['index'].iloc[0])) or real(t, *a, **kw)
from select_nb.cli import main
main({['score'] + [str(a) for a in args]!r})
print('PIECES', seen)
"""], env={**os.environ, 'SELECT_NB_CACHE': str(tmp_path/'cache'), 'HF_HUB_OFFLINE': '1', 'PYTHONPATH': str(ROOT)}, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr[-2000:]
    starts = json.loads(res.stdout.split('PIECES')[-1])
    assert not any(s // 10 < len(done) for s in starts) and len(starts) == 10 - len(done)  # first pieces skipped
    _same(pd.read_parquet(tmp_path/'s.parquet'), score(load(alpaca_jsonl), model=tiny_dir, dtype='fp32', cache=False, progress=False))

def test_stream_lenient_non_utf8_record_is_a_skip_in_the_output(tmp_path, alpaca_jsonl, tiny):
    p = tmp_path/'u.jsonl'; p.write_bytes(alpaca_jsonl.read_bytes() + b'{"instruction": "Caf\xe9", "output": "ok"}\n')
    from select_nb.data.load import Source
    score(Source(str(p), lenient=True), executor=Stream(tmp_path/'s.parquet', chunk_size=40, cache=False, progress=False), model=tiny)
    s = pd.read_parquet(tmp_path/'s.parquet')
    assert len(s) == 93 and s.status.iloc[-1] == 'invalid' and s.instruction.iloc[-1] == 'Caf\ufffd'
