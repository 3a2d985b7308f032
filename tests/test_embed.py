import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import pytest, torch
from select_nb.core.records import render_prompt
from select_nb.data.load import load
from select_nb.data.formats import to_table
from select_nb.models.tiny import tiny_lm
from select_nb.engine.embed import record_texts, embed_sentences, lm_tokens, mean_hidden, embed_lm, embed, is_sentence_model, EmbedCache

@pytest.fixture(scope='module')
def alpaca(): return load('alpaca', limit=24)

def test_record_texts_keep_empty_input_line():
    t = to_table([{'instruction': 'Add.', 'input': '', 'output': '5'}, {'instruction': 'Add.', 'input': '2 3', 'output': '5'}])
    assert record_texts(t) == ["Add.\n\n5", "Add.\n2 3\n5"]

def test_sentence_embeddings_unit_norm_and_batch_invariant(alpaca):
    texts = record_texts(alpaca)[:8]
    e = embed_sentences(texts, progress=False)
    assert e.shape == (8, 384) and e.dtype == torch.float32
    assert torch.allclose(e.norm(dim=1), torch.ones(8), atol=1e-5)
    one = torch.cat([embed_sentences([t], batch_size=1, progress=False) for t in texts[:3]])
    assert torch.allclose(one, e[:3], atol=1e-4)

def test_lm_embedding_batched_equals_alone_and_mean(alpaca):
    lm = tiny_lm()
    seqs = lm_tokens(alpaca.iloc[:5], lm.tokenizer, 'none', 48)
    assert max(map(len, seqs)) <= 48
    b = mean_hidden(lm, seqs)
    a = torch.cat([mean_hidden(lm, [s]) for s in seqs])
    assert torch.allclose(a, b, atol=1e-5)
    with torch.no_grad(): h = lm.model.model(torch.tensor([seqs[2]])).last_hidden_state[0]
    assert torch.allclose(b[2], h.mean(0), atol=1e-5)

def test_cache_resumes_and_keeps_table_order(alpaca, tmp_path):
    lm = tiny_lm()
    e1 = embed_lm(alpaca.iloc[:10], lm, 'none', 48, batch_tokens=120, cache=tmp_path, progress=False)
    n_parts = len(list(tmp_path.rglob('*.npz')))
    assert n_parts > 1
    e2 = embed_lm(alpaca.iloc[:12].iloc[::-1], lm, 'none', 48, cache=tmp_path, progress=False)  # 2 new records
    assert torch.equal(e2[2:], e1.flip(0))
    assert len(list(tmp_path.rglob('*.npz'))) > n_parts
    assert len(EmbedCache(lm.name, 'none-L48-fp32', tmp_path).read()) == 12

def test_front_door_dispatch(alpaca, tmp_path):
    assert is_sentence_model('minilm') and not is_sentence_model('smollm2-135m')
    e = embed(alpaca.iloc[:6], 'minilm', cache=tmp_path, progress=False)
    assert e.shape == (6, 384)
    assert embed(alpaca.iloc[:6], tiny_lm(), 'none', 48, cache=False, progress=False).shape == (6, 32)

def test_smollm2_embedding(alpaca):
    e = embed_lm(alpaca.iloc[:4], 'smollm2-135m', max_length=128, cache=False, progress=False)
    assert e.shape == (4, 576) and torch.isfinite(e).all()
    one = embed_lm(alpaca.iloc[1:2], 'smollm2-135m', max_length=128, cache=False, progress=False)
    assert torch.nn.functional.cosine_similarity(one[0], e[1], dim=0) > 0.99  # bf16: batched ~ alone
