"Scoring on a local Ray cluster (`03e_distributed`, 2 CPU actors, a tiny model): the local path's numbers, resume after the driver is killed, a clear error for an unreachable address."
import json, os, signal, subprocess, sys, time
from pathlib import Path
import pandas as pd, pytest
from select_nb.cli import main
from test_stream import _same, alpaca_jsonl, tiny_dir, ROOT
ray = pytest.importorskip('ray')

@pytest.fixture(scope='module')
def cluster():
    from select_nb.run.ray import ray_init
    r = ray_init(workers=2)
    yield r
    r.shutdown()

def test_ray_equals_local(cluster, tmp_path, alpaca_jsonl, tiny_dir):
    args = ['score', '--data', str(alpaca_jsonl), '--model', tiny_dir, '--dtype', 'fp32', '--chunk-size', '25']
    main(args + ['--out', str(tmp_path/'local.parquet')])
    main(args + ['--out', str(tmp_path/'ray.parquet'), '--ray', '--workers', '2'])
    local, on_ray = pd.read_parquet(tmp_path/'local.parquet'), pd.read_parquet(tmp_path/'ray.parquet')
    assert list(on_ray.columns) == list(local.columns) and list(on_ray.output) == list(local.output)
    _same(on_ray, local)

def test_superfilter_on_ray_selects_the_same(cluster, tmp_path, tiny_dir):
    args = ['superfilter', '--data', 'alpaca', '--limit', '40', '--model', tiny_dir, '--dtype', 'fp32', '--ratio', '0.25']
    main(args + ['--out', str(tmp_path/'local')]); main(args + ['--out', str(tmp_path/'ray'), '--ray', '--workers', '2'])
    a, b = (pd.read_parquet(tmp_path/d/'scores.parquet') for d in ('local', 'ray'))
    _same(b, a)
    assert json.loads((tmp_path/'ray'/'selected.json').read_text()) == json.loads((tmp_path/'local'/'selected.json').read_text())

def test_unreachable_address_is_a_one_line_error(tmp_path, alpaca_jsonl, tiny_dir, capsys):
    with pytest.raises(SystemExit) as e:
        main(['score', '--data', str(alpaca_jsonl), '--model', tiny_dir, '--out', str(tmp_path/'x.parquet'), '--ray', '--address', '127.0.0.1:1'])
    assert e.value.code == 2
    assert "select-nb score: error: cannot reach a Ray cluster at '127.0.0.1:1'" in capsys.readouterr().err

RESUME = """
import json, sys
import select_nb.run.ray as d
sent, real = [], d._block
d._block = lambda t, k: sent.append(k) or real(t, k)
from select_nb.cli import main
main(json.loads(sys.argv[1]))
print('SENT', json.dumps(sent))
"""

def test_killed_driver_resumes_without_rescoring_finished_shards(tmp_path, alpaca_jsonl, tiny_dir):
    args = ['score', '--data', str(alpaca_jsonl), '--model', tiny_dir, '--dtype', 'fp32', '--chunk-size', '10',
            '--out', str(tmp_path/'s.parquet'), '--ray', '--workers', '2']
    env = {**os.environ, 'SELECT_NB_CACHE': str(tmp_path/'cache'), 'HF_HUB_OFFLINE': '1', 'PYTHONPATH': f"{ROOT}:{ROOT/'tests'}"}
    p, parts = subprocess.Popen([sys.executable, '-c', RESUME, json.dumps(args)], env=env, start_new_session=True,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL), tmp_path/'s.parquet.parts'
    t0 = time.time()
    while len(list(parts.glob('scores-*.parquet'))) < 2 and time.time() - t0 < 300 and p.poll() is None: time.sleep(0.2)
    os.killpg(p.pid, signal.SIGKILL); p.wait()
    done = sorted(int(f.name[7:13]) for f in parts.glob('scores-*.parquet'))
    assert 2 <= len(done) < 10 and not (tmp_path/'s.parquet').exists()
    res = subprocess.run([sys.executable, '-c', RESUME, json.dumps(args)], env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    sent = json.loads(res.stdout.split('SENT')[-1])
    assert sent and not set(sent) & set(done)  # no finished piece sent again (actors of the killed driver may finish more first)
    main(['score', '--data', str(alpaca_jsonl), '--model', tiny_dir, '--dtype', 'fp32', '--out', str(tmp_path/'local.parquet')])
    _same(pd.read_parquet(tmp_path/'s.parquet'), pd.read_parquet(tmp_path/'local.parquet'))
