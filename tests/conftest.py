import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')  # nothing downloads at test time
import pytest
from select_nb.models.tiny import tiny_lm
from select_nb.models.lm import load_lm

@pytest.fixture(scope='session')
def tiny(): return tiny_lm()

@pytest.fixture(scope='session')
def smol(): return load_lm('smollm2-135m')

def sp_tokenizer(tmp_dir):
    "A tiny SentencePiece BPE tokenizer (Llama-style: dummy prefix, byte fallback), trained offline and loaded as a fast LlamaTokenizer."
    import sentencepiece as spm
    from transformers import LlamaTokenizer
    from select_nb.models.tiny import _CORPUS
    spm.SentencePieceTrainer.train(sentence_iterator=iter(_CORPUS * 20), model_prefix=f'{tmp_dir}/tokenizer', vocab_size=400, model_type='bpe',
                                   bos_id=1, eos_id=2, unk_id=0, pad_id=-1, character_coverage=1.0, byte_fallback=True, hard_vocab_limit=False,
                                   normalization_rule_name='identity', remove_extra_whitespaces=False, add_dummy_prefix=True, minloglevel=2)
    return LlamaTokenizer.from_pretrained(str(tmp_dir))
