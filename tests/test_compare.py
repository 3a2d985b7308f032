"`select-nb compare`: every method at one count, one evaluation, the leaderboard against random and longest; resume after a kill; the command line."
import json
from collections import Counter
from pathlib import Path
import pandas as pd, pytest
import select_nb.eval.evaluate as ev
import select_nb.jobs.compare as cmp
from select_nb.cli import build_parser, main
from select_nb.data.load import load
from select_nb.data.runs import write_records
from select_nb.eval.ifeval import IFEVAL_METRICS
from select_nb.models.tiny import tiny_lm

SETTINGS = dict(pool='alpaca', limit=60, ratio=0.1, methods=['superfilter', 'kcenter', 'scar'], evals={'alpaca-eval-gpt4': 3, 'dolly': 3, 'ifeval': 3},
                seeds=2, budget='steps', epochs=1, lr=3e-2, max_length=400, max_new_tokens=4, n_boot=200)
WRAPPED = [(cmp, 'superfilter_job'), (cmp, 'kcenter_job'), (cmp, 'scar_rank_job'), (cmp, 'baseline_job'), (ev, 'finetune')]

def _files(folder): return {p: p.stat().st_mtime_ns for p in Path(folder).rglob('*') if p.is_file() and p.suffix in ('.json', '.jsonl', '.parquet', '.safetensors')}

@pytest.fixture(scope='module')
def compared(tiny, tmp_path_factory):
    "A compare run killed in k-center's job, resumed and killed again in its third training, then resumed to the end."
    root, mp, calls, kill, runs = tmp_path_factory.mktemp('compare'), pytest.MonkeyPatch(), Counter(), {}, []
    def wrap(mod, name):
        real = getattr(mod, name)
        def f(*a, **k):
            calls[name] += 1
            if kill.get(name) == calls[name]: raise KeyboardInterrupt
            return real(*a, **k)
        mp.setattr(mod, name, f)
    for mod, name in WRAPPED: wrap(mod, name)
    settings = cmp.CompareSettings(**SETTINGS, base=tiny, scorer=tiny, out=root/'run')
    for k in ({'kcenter_job': 1}, {'finetune': 3}):
        kill.clear(); kill.update(k)
        with pytest.raises(KeyboardInterrupt): cmp.compare_job(settings, progress=False)
        runs.append(dict(calls)); before = _files(root/'run')
    kill.clear()
    summary = cmp.compare_job(settings, progress=False)
    mp.undo()
    return dict(root=root, run=root/'run', runs=runs + [dict(calls)], before=before, summary=summary)

def test_compare_resumes_after_a_kill_without_redoing_finished_stages(compared):
    first, second, third = compared['runs']
    assert first == {'superfilter_job': 1, 'kcenter_job': 1}  # killed in k-center's job: Superfiltering was finished
    # second run: Superfiltering not redone, k-center again, SCAR, random and longest; 2 models trained, the third killed
    assert second == {'superfilter_job': 1, 'kcenter_job': 2, 'scar_rank_job': 1, 'baseline_job': 2, 'finetune': 3}
    # third run: no selection job at all; the 8 models left of 5 selections x 2 seeds
    assert third == {**second, 'finetune': 3 + 8}
    after = _files(compared['run'])
    changed = [p for p, t in compared['before'].items() if after[p] != t and p.parent.name != 'selections']  # the evaluation writes its inputs at each start
    assert changed == [] and len(compared['before']) > 20  # every finished selection, model and file untouched
    assert sorted(p.name for p in (compared['run']/'evaluate'/'models').iterdir()) == sorted(f"{m}.seed{k}" for m in
           ('superfilter', 'kcenter', 'scar', 'random', 'longest') for k in (0, 1))

def test_every_method_selects_the_same_count(compared):
    s = compared['summary']
    assert s['count'] == 6 and {n: m['selected'] for n, m in s['methods'].items()} == dict.fromkeys(['superfilter', 'kcenter', 'scar', 'random', 'longest'], 6)
    pool = load('alpaca', limit=60)
    for name, m in s['methods'].items():
        assert Path(m['file']) == compared['run']/name/'selected.json' and set(load(m['file']).id) <= set(pool.id)
    assert list(s['evaluation']['selections']) == ['superfilter', 'kcenter', 'scar', 'random', 'longest']
    assert s['settings']['methods'] == ['superfilter', 'kcenter', 'scar'] and s['settings']['ratio'] == 0.1

def test_leaderboard_rows_differences_and_intervals(compared):
    board = pd.read_parquet(compared['run']/'leaderboard.parquet')
    need = {'method', 'eval_set', 'metric', 'value', 'ci_low', 'ci_high', 'n', 'seeds', 'diff_random', 'diff_random_low', 'diff_random_high',
            'diff_longest', 'diff_longest_low', 'diff_longest_high', 'response_tokens', 'answer_tokens'}
    assert need <= set(board.columns) and not board.duplicated(['method', 'eval_set', 'metric']).any()
    metrics = {('alpaca-eval-gpt4', 'reference_nll'), ('dolly', 'reference_nll'), ('all reference sets', 'reference_nll_diff'), *(('ifeval', m) for m in IFEVAL_METRICS)}
    for m in ('base', 'superfilter', 'kcenter', 'scar', 'random', 'longest'):  # a row per method and metric
        assert set(map(tuple, board[board.method == m][['eval_set', 'metric']].values)) == metrics, m
    for side in ('random', 'longest'):
        d, lo, hi = board[f'diff_{side}'], board[f'diff_{side}_low'], board[f'diff_{side}_high']
        assert d.notna().all() and (lo <= d + 1e-12).all() and (d <= hi + 1e-12).all()
        assert (board[board.method == side][f'diff_{side}'] == 0).all()
    rows = board[board.metric != 'reference_nll_diff']
    assert rows.value.notna().all() and (rows.ci_low <= rows.value).all() and (rows.value <= rows.ci_high).all()
    assert board[board.metric == 'reference_nll_diff'].value.isna().all()
    assert (board[board.method != 'base'].seeds == 2).all() and board[board.method != 'base'].response_tokens.notna().all()
    # the differences are eval.results' paired ones, taken to each baseline on the evaluation's files
    for side in ('random', 'longest'):
        again = ev.rebuild_results(compared['run']/'evaluate', side).set_index(['selection', 'eval_set', 'metric'])
        got = board.set_index(['method', 'eval_set', 'metric'])
        pd.testing.assert_series_equal(got[f'diff_{side}'], again['diff'].reindex(got.index), check_names=False)
    assert (compared['run']/'leaderboard.png').exists() and json.loads((compared['run']/'summary.json').read_text())['leaderboard'] == json.loads(board.to_json(orient='records'))

def test_a_finished_selection_is_taken_as_it_is_and_checked(tiny, tmp_path):
    pool = load('alpaca', limit=40)
    mine = write_records(pool.iloc[:4], tmp_path/'nuggets'/'selected.json')
    s = cmp.CompareSettings(pool='alpaca', limit=40, n=4, methods=[f'nuggets={mine}'], evals={'alpaca-eval-gpt4': 2}, base=tiny, budget='steps',
                            epochs=1, max_length=400, n_boot=50, out=tmp_path/'run')
    summary = cmp.compare_job(s, progress=False)
    assert list(summary['methods']) == ['nuggets', 'random', 'longest'] and summary['methods']['nuggets']['method'] == str(mine)
    assert list(load(tmp_path/'run'/'nuggets'/'selected.json').id) == list(pool.id[:4])
    write_records(load('dolly', limit=4), tmp_path/'dolly.json')
    with pytest.raises(ValueError, match='4 of its 4 records are not in the pool'):
        cmp.compare_job(s.replace(methods=[f'dolly={tmp_path/"dolly.json"}'], out=tmp_path/'bad'), progress=False)
    with pytest.raises(ValueError, match='use one of superfilter'): cmp.method_specs(['ifd'])
    with pytest.raises(ValueError, match='keeps no record'): cmp.compare_job(s.replace(n=0), progress=False)
    with pytest.raises(ValueError, match='no leaderboard without reference sets or IFEval'):  # refused before any selection is made
        cmp.compare_job(s.replace(methods=['longest'], evals={'vicuna-80': 2}, out=tmp_path/'judged'), progress=False)
    assert not (tmp_path/'judged').exists()

@pytest.fixture(scope='module')
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('tiny_model'); lm = tiny_lm(); lm.model.save_pretrained(d); lm.tokenizer.save_pretrained(d)
    return str(d)

def test_cli_compare(tiny_dir, tmp_path, capsys):
    main(['compare', '--pool', 'alpaca', '--limit', '40', '--methods', 'kcenter,longest', '--n', '4', '--base', tiny_dir, '--eval', 'alpaca-eval-gpt4:2,ifeval:2',
          '--budget', 'steps', '--seeds', '2', '--epochs', '1', '--max-length', '400', '--max-new-tokens', '4', '--dtype', 'fp32', '--n-boot', '100',
          '--out', str(tmp_path/'run')])
    out = capsys.readouterr().out
    assert 'diff_random' in out and 'diff_longest' in out and 'kcenter kept 4, longest kept 4, random kept 4 of 40 records (count 4)' in out
    board = pd.read_parquet(tmp_path/'run'/'leaderboard.parquet')
    assert list(board.method.unique()) == ['base', 'kcenter', 'longest', 'random'] and len(board) == 4 * 5
    summary = json.loads((tmp_path/'run'/'summary.json').read_text())
    assert summary['settings']['n'] == 4 and summary['settings']['methods'] == ['kcenter', 'longest'] and summary['evaluation']['seeds'] == [0, 1]

def test_compare_options_come_from_its_settings():
    p = build_parser()
    a = p.parse_args(['compare', '--pool', 'alpaca', '--ratio', '0.05', '--methods', 'superfilter, nuggets=runs/ng/selected.json', '--eval', 'ifeval:200',
                      '--seeds', '3', '--budget', 'tokens', '--diversity-pool', '5', '--out', 'o'])
    assert (a.methods, a.evals, a.seeds, a.budget, a.diversity_pool, a.ratio, a.n) == (['superfilter', 'nuggets=runs/ng/selected.json'], {'ifeval': 200}, 3, 'tokens', 5.0, 0.05, None)
    with pytest.raises(SystemExit): p.parse_args(['compare', '--pool', 'alpaca', '--out', 'o'])  # --ratio or --n is required
    with pytest.raises(SystemExit): p.parse_args(['compare', '--pool', 'alpaca', '--ratio', '0.1', '--n', '5', '--out', 'o'])
    from select_nb.cli import settings_of
    s = settings_of(cmp.CompareSettings, a)
    assert s.to_dict() | {'pool': 'alpaca'} == cmp.CompareSettings(pool='alpaca', ratio=0.05, methods=['superfilter', 'nuggets=runs/ng/selected.json'],
                                                                  evals={'ifeval': 200}, seeds=3, budget='tokens', diversity_pool=5, out='o').to_dict()
    helps = {act.dest: act.help for act in next(x for x in p._actions if hasattr(x, 'choices') and x.choices and 'compare' in x.choices).choices['compare']._actions}
    assert helps['methods'].startswith(cmp.CompareSettings.docs()['methods']) and helps['seeds'].startswith('train every selection this many times')
