import json, subprocess, sys
from pathlib import Path
import pandas as pd, pytest
from select_nb.cli import build_parser, main

def test_help_lists_subcommands():
    text = build_parser().format_help()
    for cmd in ('score', 'superfilter', 'consistency', 'nuggets', 'scar', 'kcenter', 'list'): assert cmd in text

def test_score_writes_table_with_input_fields(tmp_path):
    main(['score', '--data', 'alpaca', '--limit', '6', '--out', str(tmp_path/'s.parquet')])
    s = pd.read_parquet(tmp_path/'s.parquet')
    assert len(s) == 6 and {'id', 'status', 'nll_cond', 'ifd_ppl', 'ifd_loss', 'instruction', 'output'} <= set(s.columns)

def test_bad_input_is_one_line_error(tmp_path, capsys):
    bad = tmp_path/'bad.json'; bad.write_text('[{"instruction": "Hi", "output": 3}]')
    with pytest.raises(SystemExit) as e: main(['score', '--data', str(bad), '--out', str(tmp_path/'x.parquet')])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert "record 0, field 'output': expected a string, got int" in err and 'Traceback' not in err

def test_console_script_runs():
    r = subprocess.run([str(Path(sys.executable).parent/'select-nb'), '--help'], capture_output=True, text=True)
    assert r.returncode == 0 and 'superfilter' in r.stdout

def test_method_subcommands_write_run_folders(tmp_path):
    main(['kcenter', '--data', 'alpaca', '--limit', '30', '--k', '5', '--out', str(tmp_path/'kc')])
    assert len(json.loads((tmp_path/'kc'/'selected.json').read_text())) == 5
    main(['nuggets', '--data', 'alpaca', '--limit', '6', '--anchors', 'random:3', '--out', str(tmp_path/'ng')])
    s = pd.read_parquet(tmp_path/'ng'/'scores.parquet')
    assert s.golden.notna().sum() == 3 and (s.status == 'anchor').sum() == 3 and (tmp_path/'ng'/'summary.json').exists()
    main(['consistency', '--data', 'alpaca', '--models', 'smollm2-135m,gemma3-270m', '--limit', '10', '--n-boot', '20', '--out', str(tmp_path/'cs')])
    assert (tmp_path/'cs'/'scores.parquet').exists() and (tmp_path/'cs'/'distributions.png').exists()

def test_scar_subcommands_parse():
    a = build_parser().parse_args(['scar', 'rank', '--data', 'alpaca', '--ranker', 'r', '--ratio', '0.1', '--out', 'o'])
    assert a.func.__name__ == 'cmd_scar_rank' and a.ratio == 0.1
    assert build_parser().parse_args(['scar', 'train']).func.__name__ == 'cmd_scar_train'
    a = build_parser().parse_args(['scar', 'train'])
    assert (a.ppl_model, a.pooling, a.finetune_encoder, a.authors, a.rewriter) == ('smollm2-135m', 'mean', False, False, 'qwen2.5-coder-0.5b')
    assert build_parser().parse_args(['scar', 'train', '--authors']).authors
    assert build_parser().parse_args(['nuggets', '--data', 'alpaca', '--candidates', '12', '--out', 'o']).candidates == 12


# --- issue 14: --fields / --split / --lenient on every data subcommand, and `select-nb baseline` ---------
import datasets
from select_nb.core.env import data_dir
from select_nb.data.formats import read_rows
from select_nb.data.load import load
from select_nb.models.tiny import tiny_lm
datasets.disable_progress_bars()

DATA_COMMANDS = [['score', '--out', 'o.parquet'], ['superfilter', '--out', 'o'], ['kcenter', '--out', 'o'], ['nuggets', '--out', 'o'],
                 ['scar', 'rank', '--ranker', 'r', '--out', 'o'], ['baseline', '--by', 'random', '--ratio', '0.1', '--out', 'o'],
                 ['consistency', '--out', 'o']]

@pytest.mark.parametrize('cmd', DATA_COMMANDS, ids=lambda c: c[0] if c[0] != 'scar' else 'scar-rank')
def test_every_data_subcommand_takes_fields_split_lenient(cmd):
    a = build_parser().parse_args(cmd + ['--data', 'x', '--fields', 'instruction=prompt,response=choices.0.text', '--lenient', '--split', 'test'])
    assert a.fields == {'instruction': 'prompt', 'response': 'choices.0.text'} and a.lenient and a.split == 'test'
    assert build_parser().parse_args(cmd + ['--data', 'x']).fields is None

def test_bad_fields_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as e: main(['baseline', '--data', 'alpaca', '--by', 'random', '--ratio', '0.1', '--out', 'o', '--fields', 'output=completion'])
    assert e.value.code == 2 and "NAME one of instruction, input, response, conversation" in capsys.readouterr().err

def _dolly_prompt_completion(path, n=12):
    "Real Dolly records renamed to prompt / nested completion, as Parquet."
    rows = json.loads((data_dir()/'dolly/dolly_3k.json').read_text())[:n]
    out = [{'prompt': r['instruction'], 'context': r['input'] or None, 'meta': {'completion': r['output'], 'category': r['category']}} for r in rows]
    pd.DataFrame(out).to_parquet(path)
    return out

@pytest.fixture(scope='module')
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('tiny')
    lm = tiny_lm(); lm.model.save_pretrained(d); lm.tokenizer.save_pretrained(d)
    return str(d)

def test_score_with_dotted_fields_on_parquet(tmp_path, tiny_dir, monkeypatch):
    monkeypatch.setenv('SELECT_NB_CACHE', str(tmp_path/'cache'))
    rows = _dolly_prompt_completion(tmp_path/'d.parquet')
    main(['score', '--data', str(tmp_path/'d.parquet'), '--fields', 'instruction=prompt,input=context,response=meta.completion',
          '--model', tiny_dir, '--dtype', 'fp32', '--out', str(tmp_path/'s.parquet')])
    s = pd.read_parquet(tmp_path/'s.parquet')
    assert len(s) == len(rows) and s.ifd_ppl.notna().all() and list(s.prompt) == [r['prompt'] for r in rows]

def test_lenient_flag_reaches_the_job(tmp_path, capsys):
    rows = json.loads((data_dir()/'alpaca/alpaca_random_9k.json').read_text())[:10]
    rows[3] = {'instruction': rows[3]['instruction'], 'output': 3}
    (tmp_path/'a.json').write_text(json.dumps(rows))
    args = ['baseline', '--data', str(tmp_path/'a.json'), '--by', 'longest', '--n', '4', '--out', str(tmp_path/'run')]
    with pytest.raises(SystemExit): main(args)
    assert "a.json, record 3, field 'output': expected a string, got int" in capsys.readouterr().err
    main(args + ['--lenient'])
    summary = json.loads((tmp_path/'run'/'summary.json').read_text())
    assert (summary['records'], summary['usable'], summary['selected']) == (10, 9, 4)
    picked = json.loads((tmp_path/'run'/'selected.json').read_text())
    assert picked == sorted([r for i, r in enumerate(rows) if i != 3], key=lambda r: -len(r['output']))[:4]

def test_baseline_on_a_datasets_folder_writes_a_datasets_folder(tmp_path):
    qs = {q['question_id']: q['turns'] for q in read_rows(data_dir()/'eval/mt_bench_80.jsonl')}
    rows = [{'question_id': r['question_id'], 'messages': [{'role': 'user', 'content': qs[r['question_id']][0]},
             {'role': 'assistant', 'content': r['choices'][0]['turns'][0]}, {'role': 'user', 'content': qs[r['question_id']][1]},
             {'role': 'assistant', 'content': r['choices'][0]['turns'][1]}]} for r in read_rows(data_dir()/'eval/mt_bench_reference_gpt4.jsonl')]
    datasets.DatasetDict(train=datasets.Dataset.from_list(rows)).save_to_disk(str(tmp_path/'mt'))
    main(['baseline', '--data', str(tmp_path/'mt'), '--split', 'train', '--by', 'random', '--ratio', '0.2', '--seed', '3', '--out', str(tmp_path/'run')])
    sel = datasets.load_from_disk(str(tmp_path/'run'/'selected')).to_list()
    s = pd.read_parquet(tmp_path/'run'/'scores.parquet')
    assert len(sel) == 6 and all(r in rows for r in sel) and s.selected.sum() == 6 and len(s) == 30
    assert sorted(r['question_id'] for r in sel) == sorted(s[s.selected].merge(load(tmp_path/'mt', split='train')[['id', 'raw']]).raw.map(lambda r: r['question_id']))

def test_baseline_perplexity_with_a_tiny_model(tmp_path, tiny_dir, monkeypatch):
    monkeypatch.setenv('SELECT_NB_CACHE', str(tmp_path/'cache'))
    main(['baseline', '--data', 'alpaca', '--limit', '12', '--by', 'perplexity', '--n', '3', '--model', tiny_dir, '--dtype', 'fp32', '--out', str(tmp_path/'run')])
    s = pd.read_parquet(tmp_path/'run'/'scores.parquet')
    low = s.dropna(subset=['ppl_cond']).nsmallest(3, 'ppl_cond').id
    picked = json.loads((tmp_path/'run'/'selected.json').read_text())
    t = load('alpaca', limit=12).set_index('id')
    assert picked == list(t.loc[low].raw) and set(s[s.selected].id) == set(low)

def test_start_token_and_authors_from_the_shell(tmp_path):
    from select_nb.cli import main
    import pandas as pd
    data = tmp_path/'d.json'; data.write_text(json.dumps([{'instruction': f'Say {w}.', 'input': '', 'output': f'{w} ' * (2 + i)} for i, w in enumerate(['a', 'b', 'c'])]))
    model = tmp_path/'tiny'; lm = tiny_lm(); lm.model.save_pretrained(model); lm.tokenizer.save_pretrained(model)
    main(['score', '--data', str(data), '--model', str(model), '--out', str(tmp_path/'s.parquet'), '--start-token', '<s>', '--dtype', 'fp32'])
    s = pd.read_parquet(tmp_path/'s.parquet')
    assert set(s.start_token) == {'<s>'} and set(s.convention) == {'select_nb'}
    main(['superfilter', '--data', str(data), '--model', str(model), '--out', str(tmp_path/'sf'), '--authors', 'cherry', '--ratio', '1'])
    summ = json.loads((tmp_path/'sf'/'summary.json').read_text())
    assert summ['convention'] == 'cherry' and summ['settings']['authors'] == 'cherry'
    assert summ['settings']['col'] == 'ifd_loss' and summ['settings']['max_length'] == 512
    with pytest.raises(SystemExit): main(['score', '--data', str(data), '--out', str(tmp_path/'x.parquet'), '--authors', 'nobody'])


# --- issue 22: the CLI built from the jobs' settings dataclasses; one ratio rule ---------
import argparse, dataclasses
from select_nb.cli import settings_of
from select_nb.core.settings import field_docs
from select_nb.jobs.superfilter import SuperfilterSettings

SELECTING = [['superfilter'], ['kcenter'], ['nuggets'], ['scar', 'rank'], ['baseline', '--by', 'random']]

@pytest.mark.parametrize('cmd', SELECTING, ids=lambda c: '-'.join(c[:2]))
def test_every_selecting_command_takes_ratio_or_n(cmd, capsys):
    base = cmd + ['--data', 'alpaca', '--out', 'o']
    assert build_parser().parse_args(base + ['--ratio', '0.05']).ratio == 0.05
    assert build_parser().parse_args(base + ['--n', '20']).n == 20
    with pytest.raises(SystemExit): build_parser().parse_args(base + ['--ratio', '0.05', '--n', '20'])
    assert 'not allowed with argument' in capsys.readouterr().err

def test_readme_command_parses_to_its_settings():
    a = build_parser().parse_args('superfilter --data alpaca --limit 1000 --model smollm2-135m --ratio 0.05 --out runs/alpaca-superfilter'.split())
    s = settings_of(SuperfilterSettings, a, ray=None)
    assert (str(s.data), s.limit, s.model, s.ratio, s.n, s.out, s.template, s.kernel) == ('alpaca', 1000, 'smollm2-135m', 0.05, None, 'runs/alpaca-superfilter', 'none', 'cosine')
    assert s.to_dict() == SuperfilterSettings(data='alpaca', limit=1000, ratio=0.05, out='runs/alpaca-superfilter').to_dict()  # every default from the dataclass

def _subparsers(p):
    "(command, parser) for every leaf subcommand."
    for act in p._actions:
        if isinstance(act, argparse._SubParsersAction):
            for name, sp in act.choices.items():
                subs = list(_subparsers(sp))
                yield from ((f"{name} {n}", q) for n, q in subs) if subs else [(name, sp)]

def test_every_option_is_documented_by_its_field():
    "Each option of a job's command is a field of its settings, its help that field's inline comment (nothing re-documented in the CLI)."
    from select_nb.eval.evaluate import EvaluateSettings
    from select_nb.jobs.baseline import BaselineSettings
    from select_nb.jobs.consistency import ConsistencySettings
    from select_nb.jobs.kcenter import KcenterSettings
    from select_nb.jobs.nuggets import NuggetsSettings
    from select_nb.jobs.scar import ScarGenerateSettings, ScarRankSettings, ScarTrainSettings
    classes = {'superfilter': SuperfilterSettings, 'consistency': ConsistencySettings, 'kcenter': KcenterSettings, 'nuggets': NuggetsSettings,
               'scar train': ScarTrainSettings, 'scar rank': ScarRankSettings, 'scar generate': ScarGenerateSettings,
               'baseline': BaselineSettings, 'evaluate': EvaluateSettings}
    parsers = dict(_subparsers(build_parser()))
    for cmd, cls in classes.items():
        docs, helps = field_docs(cls), {act.dest: act.help for act in parsers[cmd]._actions}
        for f in dataclasses.fields(cls):
            if f.name in ('ray', 'phases') or (cmd == 'consistency' and f.name == 'model'): continue  # the command line's own (--ray, --sources / --kinds / --n), or set per rung
            assert docs[f.name] and helps[f.name].startswith(docs[f.name]), (cmd, f.name)
    assert all(act.help for p in parsers.values() for act in p._actions if act.option_strings)

def test_old_flag_names_keep_working():
    p = build_parser()
    assert p.parse_args(['kcenter', '--data', 'x', '--out', 'o', '--k', '5', '--no-cache']).n == 5
    assert p.parse_args(['scar', 'rank', '--data', 'x', '--out', 'o', '--top-k', '3']).n == 3
    a = p.parse_args(['scar', 'train', '--finetune-encoder', '--no-form-proj', '--quality', 'none', '--ppl-model', 'none', '--heldout', 'a', 'b'])
    assert (a.finetune_encoder, a.form_proj, a.quality, a.ppl_model, a.heldout) == (True, False, None, None, ['a', 'b'])
    a = p.parse_args(['evaluate', '--pool', 'alpaca', '--selections', 'random:0.05, full', '--eval', 'vicuna-80:3', '--full', '--judged', 'random:0.05', '--out', 'o'])
    assert (a.selections, a.evals, a.full, a.judged) == (['random:0.05', 'full'], {'vicuna-80': 3}, True, ['random:0.05'])
    assert p.parse_args(['baseline', '--data', 'x', '--by', 'perplexity', '--n', '2', '--highest', '--out', 'o']).highest
    a = p.parse_args(['scar', 'generate', '--sources', 'dolly', '--kinds', 'direct', '--n', '4'])
    assert (a.sources, a.kinds, a.n) == (['dolly'], ['direct'], 4)

def test_kcenter_takes_a_ratio(tmp_path):
    main(['kcenter', '--data', 'alpaca', '--limit', '40', '--ratio', '0.1', '--out', str(tmp_path/'kc')])
    s = json.loads((tmp_path/'kc'/'summary.json').read_text())
    assert s['selected'] == 4 == len(json.loads((tmp_path/'kc'/'selected.json').read_text())) and s['settings']['ratio'] == 0.1


# --- issue 23: evaluate's seeds, token budget and IFEval on the command line -------------------------------------------

def test_evaluate_help_lists_the_new_settings():
    r = subprocess.run([str(Path(sys.executable).parent/'select-nb'), 'evaluate', '--help'], capture_output=True, text=True)
    assert r.returncode == 0
    text = ' '.join(r.stdout.split())
    for want in ('--seeds SEEDS', '--budget-tokens BUDGET_TOKENS', '{records,steps,tokens}', 'train every selection this many times',
                 "'ifeval': None", '--max-new-tokens'):
        assert want in text, want

def test_cli_evaluate_with_seeds_token_budget_and_ifeval(tiny_dir, tmp_path, capsys):
    main(['evaluate', '--pool', 'alpaca', '--limit', '40', '--selections', 'random:0.1,longest:0.1', '--base', tiny_dir, '--eval', 'alpaca-eval-gpt4:2,ifeval:2',
          '--budget', 'tokens', '--seeds', '2', '--epochs', '1', '--max-length', '400', '--max-new-tokens', '4', '--dtype', 'fp32', '--out', str(tmp_path/'run')])
    out = capsys.readouterr().out
    assert 'ifeval_prompt_strict' in out and 'reached the 4-token budget' in out and 'response_tokens' in out
    res = pd.read_parquet(tmp_path/'run'/'results.parquet')
    assert len(res) == 3 * 5 and res.groupby('selection').seeds.max().to_dict() == {'base': 1, 'longest:0.1': 2, 'random:0.1': 2}
    assert sorted(p.name for p in (tmp_path/'run'/'models').iterdir()) == ['longest_0.1.seed0', 'longest_0.1.seed1', 'random_0.1.seed0', 'random_0.1.seed1']
    summary = json.loads((tmp_path/'run'/'summary.json').read_text())
    assert summary['settings']['budget'] == 'tokens' and summary['settings']['seeds'] == 2 and summary['settings']['evals'] == {'alpaca-eval-gpt4': 2, 'ifeval': 2}
