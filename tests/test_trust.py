"Scores you can trust: the document-start token, response tokens in context, a content-keyed cache safe for concurrent runs."
import json, subprocess, sys, textwrap
import numpy as np, pandas as pd, pytest, torch
import torch.nn.functional as F
import select_nb.engine.score as sc
from select_nb.data.formats import to_table
from select_nb.data.load import load
from select_nb.models.tiny import tiny_lm
from select_nb.models.lm import load_lm, document_start, LM
from conftest import sp_tokenizer

def _ref(lm, seq, n):
    with torch.no_grad(): logits = lm.model(torch.tensor([seq])).logits[0].float()
    return F.cross_entropy(logits[-n-1:-1], torch.tensor(seq[-n:]), reduction='none').mean().item()

RECS = to_table([{'instruction': f'Task {i}: say', 'input': 'x' * (i % 2), 'output': 'word ' * (1 + 3 * i % 7)} for i in range(8)])

def test_registry_start_tokens(smol):
    assert smol.start_token == '<|endoftext|>' != smol.tokenizer.bos_token == '<|im_start|>'
    s = sc.score_responses(load('alpaca', limit=2), model=smol, cache=False, progress=False)
    assert set(s.start_token) == {'<|endoftext|>'}
    assert document_start(smol.tokenizer) == '<|endoftext|>'  # the rule agrees with the registry: no prepended BOS, an end-of-text token
    assert document_start(smol.tokenizer, 'gemma3-270m') == '<bos>' and document_start(smol.tokenizer, 'meta-llama/Llama-2-7b-hf') == '<s>'

def test_start_token_override_changes_only_the_unconditioned_pass(tiny):
    a = sc.score_responses(RECS, model=tiny, cache=False, progress=False)
    b = sc.score_responses(RECS, model=tiny, cache=False, progress=False, start_token='<s>')
    assert (a.nll_cond == b.nll_cond).all() and (a.nll_uncond != b.nll_uncond).all()
    e = sc.encode(RECS, tiny.tokenizer)
    assert b.nll_uncond[3] == pytest.approx(_ref(tiny, [1] + e.response_ids[3], len(e.response_ids[3])), abs=1e-5)

def test_start_token_is_part_of_the_cache_key(tiny, tmp_path):
    a = sc.score_responses(RECS, model=tiny, cache=tmp_path, progress=False)
    b = sc.score_responses(RECS, model=tiny, cache=tmp_path, progress=False, start_token='<s>')
    assert (a.nll_uncond != b.nll_uncond).all()
    assert len(list(tmp_path.glob('*/*/key.json'))) == 2

def test_sentencepiece_response_tokens_in_context(tmp_path):
    tok = sp_tokenizer(tmp_path)
    alone = tok.convert_ids_to_tokens(tok('hello world', add_special_tokens=False)['input_ids'])
    assert alone[0] == '▁'  # the dummy prefix the response does not have after the prompt's newline
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                                         num_key_value_heads=2, bos_token_id=1, eos_token_id=2)).eval()
    lm = LM(model, tok, 'tiny-sp')
    rec = to_table([{'instruction': 'Add.', 'output': 'hello world'}])
    e = sc.encode(rec, tok)
    joint = tok('Add.\nhello world', add_special_tokens=False)['input_ids']
    assert e.prompt_ids[0] + e.response_ids[0] == joint
    assert tok.convert_ids_to_tokens(e.response_ids[0])[0] == 'h' and tok.decode(e.response_ids[0]) == 'hello world'
    s = sc.score_responses(rec, model=lm, cache=False, progress=False)
    r, start = e.response_ids[0], sc.start_of(lm)[1]
    assert s.nll_cond[0] == pytest.approx(_ref(lm, joint, len(r)), abs=1e-5)
    assert s.nll_uncond[0] == pytest.approx(_ref(lm, [start] + r, len(r)), abs=1e-5)

def _save_tiny(path, seed=0):
    lm = tiny_lm(seed=seed)
    lm.model.save_pretrained(path); lm.tokenizer.save_pretrained(path)

def test_changed_weights_in_a_folder_are_never_served_from_the_cache(tmp_path):
    d = tmp_path/'model'; _save_tiny(d)
    first = sc.score_responses(RECS, model=str(d), dtype='fp32', cache=tmp_path/'cache', progress=False)
    again = sc.score_responses(RECS, model=str(d), dtype='fp32', cache=tmp_path/'cache', progress=False)
    assert np.array_equal(first.nll_cond, again.nll_cond)
    from safetensors.torch import load_file, save_file
    w = load_file(d/'model.safetensors'); k = next(k for k in w if 'layers.0.mlp' in k)
    w[k] = w[k] + 0.5; save_file(w, d/'model.safetensors', metadata={'format': 'pt'})
    changed = sc.score_responses(RECS, model=str(d), dtype='fp32', cache=tmp_path/'cache', progress=False)
    fresh = sc.score_responses(RECS, model=str(d), dtype='fp32', cache=False, progress=False)
    assert (np.abs(changed.nll_cond - first.nll_cond) > 1e-4).all()
    assert np.abs(changed.nll_cond - fresh.nll_cond).max() <= 1e-6

def test_a_cached_row_with_another_token_count_is_rescored(tiny, tmp_path):
    store = sc.score_cache(tiny, cache=tmp_path)
    first = sc.score_responses(RECS, model=tiny, cache=tmp_path, progress=False)
    rows = store.read()
    bad = rows.assign(nll_sum=rows.nll_sum * 0 + 99.0, n=rows.n + 1)  # stale rows: another scored-token count
    for p in store.parts(): p.unlink()
    store.append(bad)
    again = sc.score_responses(RECS, model=tiny, cache=tmp_path, progress=False)
    assert np.abs(again.nll_cond - first.nll_cond).max() <= 1e-6

_SCORER = textwrap.dedent('''
    import sys, json
    import select_nb.engine.score as sc
    from select_nb.data.formats import to_table
    from select_nb.models.tiny import tiny_lm
    recs = to_table([{"instruction": f"Task {i}: say", "input": "", "output": "word " * (1 + i % 9)} for i in range(60)])
    s = sc.score_responses(recs, model=tiny_lm(), cache=sys.argv[1], batch_tokens=64, progress=False)
    print(json.dumps(s.nll_cond.round(6).tolist()))
''')

def test_two_processes_on_one_cache(tmp_path):
    procs = [subprocess.Popen([sys.executable, '-c', _SCORER, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    assert all(p.returncode == 0 for p in procs), [e for _, e in outs]
    a, b = (json.loads(o) for o, _ in outs)
    ref = subprocess.run([sys.executable, '-c', _SCORER, str(tmp_path/'fresh')], capture_output=True, text=True, check=True)
    assert a == b == json.loads(ref.stdout)
