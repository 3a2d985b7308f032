"One ratio rule across every method: the same pool, with records no method may keep, and the count each keeps for --ratio 0.05 and for --n."
import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import json
import pandas as pd, pytest, torch
from transformers import AutoTokenizer, BertConfig, BertModel
from select_nb.cli import main
from select_nb.core.records import usable
from select_nb.data.load import load
from select_nb.data.runs import write_records
from select_nb.eval.evaluate import selection
from select_nb.methods.scar.ranker import ScarConfig, ScarRanker
from select_nb.methods.scar.train import save_ranker
from select_nb.models.registry import model_path
from select_nb.models.tiny import tiny_lm
from select_nb.select.count import n_keep

N = 7  # the count asked with --n

@pytest.fixture(scope='module')
def pool(tmp_path_factory):
    "100 real Alpaca records as a JSON file (94 usable, the sample's 4 empty responses, 2 duplicates), a tiny LM and a tiny SCAR ranker."
    d = tmp_path_factory.mktemp('count')
    alpaca = load('alpaca')
    t = pd.concat([alpaca.iloc[:94], alpaca[~usable(alpaca)], alpaca.iloc[[3, 7]]], ignore_index=True)
    path = write_records(t, d/'pool.json')
    lm = tiny_lm(); lm.model.save_pretrained(d/'tiny'); lm.tokenizer.save_pretrained(d/'tiny')
    tok = AutoTokenizer.from_pretrained(model_path('minilm-l6')); torch.manual_seed(0)
    enc = BertModel(BertConfig(vocab_size=tok.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                               intermediate_size=64, max_position_embeddings=512))
    save_ranker(ScarRanker(ScarConfig(encoder='tiny-bert'), enc, tok).eval(), d/'ranker')
    return d, path

def test_the_pool(pool):
    t = load(pool[1])
    assert (len(t), int(usable(t).sum())) == (100, 94)
    assert n_keep(len(t), ratio=0.05) == 5 and int(usable(t).sum() * 0.05) == 4  # a share of the input, not of the usable records

COMMANDS = {  # every selecting command; {d}: the fixture's folder
    'superfilter': 'superfilter --model {d}/tiny --dtype fp32',
    'kcenter': 'kcenter',
    'nuggets': 'nuggets --model {d}/tiny --dtype fp32 --anchors random:4',
    'scar-rank': 'scar rank --ranker {d}/ranker',
    'baseline-random': 'baseline --by random',
    'baseline-longest': 'baseline --by longest',
    'baseline-perplexity': 'baseline --by perplexity --model {d}/tiny --dtype fp32',
}

def _qualifying(method, out)->int:
    "How many records the method's own rule leaves to pick from (Superfiltering: IFD < 1; the others: every scored, usable record)."
    s = pd.read_parquet(out/'scores.parquet')
    if method == 'superfilter': return int((s.ifd_ppl < 1).sum())
    if method == 'nuggets': return int(s.golden.notna().sum())
    return 94

@pytest.mark.parametrize('method', list(COMMANDS))
def test_every_method_keeps_the_same_count(method, pool, capsys):
    d, path = pool
    for count, want in ((['--ratio', '0.05'], 5), (['--n', str(N)], N)):
        out = d/f"{method}{count[0]}"
        main(COMMANDS[method].format(d=d).split() + ['--data', str(path), '--out', str(out)] + count)
        kept, summary = json.loads((out/'selected.json').read_text()), json.loads((out/'summary.json').read_text())
        assert len(kept) == min(want, _qualifying(method, out)) == summary.get('selected', summary.get('n_selected'))
        assert len(kept) == want or method == 'superfilter'  # only Superfiltering's own rule (IFD < 1) could leave fewer here
        assert all(r['output'].strip() for r in kept) and len({json.dumps(r) for r in kept}) == len(kept)  # no empty response, no duplicate
        assert (summary['settings']['ratio'], summary['settings']['n']) == ((0.05, None) if count[0] == '--ratio' else (None, N))
        assert f"{len(kept)} of " in capsys.readouterr().out  # the command reports how many it kept

def test_evaluate_baselines_count_the_same(pool):
    d, path = pool
    t = load(path)
    for spec in ('random:0.05', 'longest:0.05', 'perplexity:0.05', 'perplexity-high:0.05'):
        name, sel = selection(spec, t, scorer=str(d/'tiny'), dtype='fp32', progress=False)
        assert len(sel) == 5 and usable(sel).all() and sel.id.is_unique

def test_nuggets_threshold_stays_the_default(pool, capsys):
    d, path = pool
    main(['nuggets', '--data', str(path), '--model', str(d/'tiny'), '--dtype', 'fp32', '--anchors', 'random:4', '--out', str(d/'ng')])
    s, summary = pd.read_parquet(d/'ng'/'scores.parquet'), json.loads((d/'ng'/'summary.json').read_text())
    assert summary['settings']['threshold'] == 0.8 and summary['selected'] == int((s.golden.astype(float) > 0.8).sum())
