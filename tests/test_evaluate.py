"Closing the loop: fine-tuning, reference loss, pairwise judging and the evaluate job, with tiny models."
import json, threading
from pathlib import Path
from http.server import BaseHTTPRequestHandler, HTTPServer
import numpy as np, pandas as pd, pytest
from select_nb.data.load import load
from select_nb.models.tiny import tiny_lm
from select_nb.run.executors import score
from select_nb.train.finetune import finetune, load_finetuned
from select_nb.eval.judge import judge_pairs, verdicts, parse_scores, OpenAIJudge, answer_prompts
import select_nb.eval.evaluate as ev
from select_nb.train.reference import reference_nll
from select_nb.cli import main
from select_nb.eval.budget import response_tokens, token_budget
from select_nb.eval.ifeval import IFEVAL_METRICS, answers_path, ifeval_answers, ifeval_metrics, ifeval_prompts, read_answers, score_ifeval

def test_training_lowers_the_loss_on_its_selection(tiny, tmp_path):
    recs = load('alpaca', limit=24)
    before = score(recs, model=tiny, template='alpaca', max_length=400, cache=False, progress=False).nll_cond.mean()
    lm, info = finetune(tiny, recs, tmp_path/'m', epochs=3, lr=3e-2, max_length=400, progress=False)
    after = score(recs, model=lm, template='alpaca', max_length=400, cache=False, progress=False).nll_cond.mean()
    assert after < before - 0.05 and info['loss_last'] < info['loss_first']

def test_trained_reference_loss_differs_from_the_base(tiny, tmp_path):
    refs = load('alpaca-eval-gpt4', limit=5)
    lm, _ = finetune(tiny, load('alpaca', limit=16), tmp_path/'m', max_steps=4, lr=3e-2, max_length=400, progress=False)
    base, trained = reference_nll(tiny, refs, max_length=400, progress=False), reference_nll(lm, refs, max_length=400, progress=False)
    assert np.abs(base.nll - trained.nll).max() > 1e-2
    # the saved adapter reloads to the same model
    again = reference_nll(load_finetuned(tiny, tmp_path/'m'), refs, max_length=400, progress=False)
    np.testing.assert_allclose(again.nll, trained.nll, atol=1e-4)

@pytest.mark.parametrize('text,expected', [("9 3\nwhy", (9.0, 3.0)), ("Assistant 1: 6/10, Assistant 2: 7/10", (6.0, 7.0)),
                                           ("The first answer is better.", None), ("7", None), ("11 2", None), ("", None), ("1 2 3", None)])
def test_judge_text_is_parsed_or_left_unparsed(text, expected): assert parse_scores(text) == expected

class _Judge:
    "Prefers the answer 'good'; counts calls; can fail after `fail_after` calls (a killed run)."
    def __init__(self, fail_after=None): self.calls, self.fail_after, self.seen = 0, fail_after, []
    def __call__(self, msgs):
        out = []
        for _, u in msgs:
            if self.fail_after is not None and self.calls >= self.fail_after: raise KeyboardInterrupt
            self.calls += 1; a1 = u.split("Assistant 1's Answer]\n")[1].split('\n')[0]; self.seen.append(a1)
            out.append("8 4" if a1 == 'good' else "4 8")
        return out

def test_both_orders_are_asked_and_judging_resumes(tmp_path):
    q = load('vicuna-80', prompt_only=True).head(5)
    good, bad = pd.DataFrame({'id': q.id, 'answer': 'good'}), pd.DataFrame({'id': q.id, 'answer': 'bad'})
    f = tmp_path/'j.jsonl'
    with pytest.raises(KeyboardInterrupt): judge_pairs(q, good, bad, _Judge(fail_after=6), out=f, batch_size=2, progress=False)
    j2 = _Judge(); res = judge_pairs(q, good, bad, j2, out=f, batch_size=2, progress=False)
    assert j2.calls == 4 and len(res) == 10  # 6 judgements kept from the killed run, 4 made now
    assert sorted(res.order.unique()) == ['ab', 'ba'] and set(j2.seen) == {'good', 'bad'} or j2.calls == 4
    assert (verdicts(res).verdict == 'win').all()

def test_openai_judge_sends_a_chat_completion(tmp_path):
    got = {}
    class H(BaseHTTPRequestHandler):
        def do_POST(self):
            got['path'], got['auth'] = self.path, self.headers['Authorization']
            got['body'] = json.loads(self.rfile.read(int(self.headers['Content-Length'])))
            body = json.dumps({'choices': [{'message': {'content': '7 5\nok'}}]}).encode()
            self.send_response(200); self.send_header('Content-Type', 'application/json'); self.end_headers(); self.wfile.write(body)
        def log_message(self, *a): pass
    srv = HTTPServer(('127.0.0.1', 0), H); threading.Thread(target=srv.handle_request, daemon=True).start()
    out = OpenAIJudge(f"http://127.0.0.1:{srv.server_port}/v1", model='judge-x', api_key='k')([('sys', 'user text')])
    assert out == ['7 5\nok'] and got['path'] == '/v1/chat/completions' and got['auth'] == 'Bearer k'
    assert got['body']['model'] == 'judge-x' and got['body']['temperature'] == 0 and got['body']['messages'][1]['content'] == 'user text'

def test_equal_budgets_are_enforced(tiny, tmp_path):
    a, b = tmp_path/'a.jsonl', tmp_path/'b.jsonl'
    pool = load('alpaca', limit=40)
    from select_nb.data.runs import write_records
    write_records(pool.iloc[:5], a); write_records(pool.iloc[5:12], b)
    with pytest.raises(ValueError, match='unequal budgets'):
        ev.evaluate_job(ev.EvaluateSettings(pool='alpaca', selections=[str(a), str(b)], out=tmp_path/'run', base=tiny, limit=40, evals={'alpaca-eval-gpt4': 2}), progress=False)
    assert ev.budget_steps({'a': 5, 'b': 7, 'full': 40}, 'steps', epochs=2, batch_size=2) == {'a': 6, 'b': 6, 'full': 6}

def test_evaluate_job_resumes_after_a_kill(tiny, tmp_path, monkeypatch):
    settings = ev.EvaluateSettings(pool='alpaca', selections=['random:0.1', 'longest:0.1', 'full'], out=tmp_path/'run', base=tiny, limit=60,
                                   evals={'alpaca-eval-gpt4': 3, 'vicuna-80': 2}, judge=_Judge(), budget='steps', epochs=1,
                                   max_length=400, max_new_tokens=4, scorer=tiny)
    real, calls = ev.finetune, []
    def killed_on_second(*a, **k):
        calls.append(k['name'])
        if len(calls) == 2: raise KeyboardInterrupt
        return real(*a, **k)
    monkeypatch.setattr(ev, 'finetune', killed_on_second)
    with pytest.raises(KeyboardInterrupt): ev.evaluate_job(settings, progress=False)
    first = tmp_path/'run'/'models'/'random_0.1.seed0'/'train.json'; stamp = first.stat().st_mtime_ns
    calls.clear(); monkeypatch.setattr(ev, 'finetune', lambda *a, **k: calls.append(k['name']) or real(*a, **k))
    s = ev.evaluate_job(settings, progress=False)
    assert calls == ['longest:0.1', 'full'] and first.stat().st_mtime_ns == stamp  # the finished model was not retrained
    res = pd.read_parquet(tmp_path/'run'/'results.parquet')
    assert set(res.selection[res.metric == 'reference_nll']) == {'base', 'random:0.1', 'longest:0.1', 'full'}
    assert set(res.selection[res.metric == 'winning_score']) == {'random:0.1', 'longest:0.1'}
    assert {v['steps'] for v in s['selections'].values()} == {1}  # 6 records / batch 8 -> 1 step each, full included

@pytest.fixture(scope='module')
def tiny_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp('tiny_model'); lm = tiny_lm(); lm.model.save_pretrained(d); lm.tokenizer.save_pretrained(d)
    return str(d)

def test_cli_evaluate_end_to_end(tiny_dir, tmp_path, capsys):
    main(['evaluate', '--pool', 'alpaca', '--limit', '40', '--selections', 'random:0.1,longest:0.1,full', '--base', tiny_dir,
          '--eval', 'alpaca-eval-gpt4:3', '--budget', 'steps', '--epochs', '1', '--max-length', '400', '--dtype', 'fp32', '--out', str(tmp_path/'run')])
    out = capsys.readouterr().out
    assert 'reference_nll' in out and (tmp_path/'run'/'summary.json').exists() and (tmp_path/'run'/'reference_loss.png').exists()
    res = pd.read_parquet(tmp_path/'run'/'results.parquet')
    assert len(res) == 4 and res.ci_low.notna().all()

def test_evaluation_sets_split_into_reference_and_test_sets():
    ref, test, ife = ev.eval_tables({'alpaca-eval-gpt4': 3, 'mt-bench-reference-gpt4': 2, 'self-instruct': 2, 'vicuna-80': 2, 'lima-300': 2, 'ifeval': 2})
    assert list(ref) == ['alpaca-eval-gpt4', 'mt-bench-reference-gpt4', 'self-instruct'] and list(test) == ['vicuna-80', 'lima-300'] and list(ife) == ['ifeval']
    assert not ref['mt-bench-reference-gpt4'].instruction.str.isdigit().any()  # the question text, not its id


# --- issue 23: IFEval, reference styles, seeds, token budgets, resume ------------------------------------------------

def test_ifeval_end_to_end_with_a_tiny_model(tiny, tmp_path):
    s = ev.EvaluateSettings(pool='alpaca', selections=['random:0.1', 'longest:0.1'], out=tmp_path/'run', base=tiny, limit=40,
                            evals={'ifeval': 5}, budget='steps', epochs=1, lr=3e-2, max_length=400, max_new_tokens=6, scorer=tiny)
    summary = ev.evaluate_job(s, progress=False)
    prompts, res = ifeval_prompts(5), pd.read_parquet(tmp_path/'run'/'results.parquet')
    assert sorted(res.metric.unique()) == sorted(IFEVAL_METRICS) and len(res) == 3 * 4 and (res.eval_set == 'ifeval').all()
    for name in ('base', 'random:0.1', 'longest:0.1'):
        f = answers_path(tmp_path/'run', name, 0)
        assert f.parent == tmp_path/'run'/'answers'/'ifeval' and f.exists()
        a = read_answers(f)
        assert list(a.key) == list(prompts.key) and list(a.columns[:3]) == ['key', 'prompt', 'response'] and a.at_budget.all()
        got = res[res.selection == name].set_index('metric').value   # the job's numbers are the checkers' on the saved answers
        assert got.to_dict() == pytest.approx(ifeval_metrics(score_ifeval(a, prompts)))
    # the untrained model answered with the run's template, greedy, within the budget
    again = ifeval_answers(tiny, prompts, template='alpaca', max_new_tokens=6, progress=False)
    assert list(again.response) == list(read_answers(answers_path(tmp_path/'run', 'base', 0)).response)
    assert (res.ci_low <= res.value).all() and (res.value <= res.ci_high).all() and (res.seeds == 1).all() and (res.n == 5).all()
    assert res[res.selection == 'random:0.1']['diff'].abs().max() == 0 and res.at_budget.tolist() == [5] * 12  # compared with itself; tiny answers never end
    groups = pd.read_parquet(tmp_path/'run'/'ifeval_groups.parquet')
    assert set(groups.selection) == {'base', 'random:0.1', 'longest:0.1'} and groups[groups.selection == 'base'].n.sum() == prompts.instruction_id_list.str.len().sum()
    assert summary['ifeval']['at_budget'] == {'base': 5, 'random:0.1': 5, 'longest:0.1': 5} and summary['ifeval']['punkt']['n'] == 15
    assert summary['ifeval']['punkt']['share'] == 1.0 and 'prompts_counting_sentences' in summary['ifeval']['punkt']

def test_token_budget_by_hand(tiny):
    assert token_budget({'a': [10, 10, 10], 'b': [25, 2, 30], 'c': [0, 40, 1]}) == {'a': 3, 'b': 2, 'c': 2}  # budget 30: a 30, b 27, c 40
    assert token_budget({'a': [10, 10, 10], 'b': [25, 2, 30]}, budget=26) == {'a': 3, 'b': 1}
    with pytest.raises(ValueError, match='above what'): token_budget({'a': [10]}, budget=11)
    recs = load('alpaca', limit=40)
    recs = recs[recs.response.str.len() < 200].head(4)
    want = [len(tiny.tokenizer(r, add_special_tokens=False).input_ids) + 1 for r in recs.response]  # response and end token
    assert list(response_tokens(recs, tiny.tokenizer, 'alpaca', 400)) == want

SEEDED = dict(pool='alpaca', selections=['random:0.1', 'longest:0.1'], base=None, limit=60, evals={'alpaca-eval-gpt4': 3, 'dolly': 3, 'ifeval': 3},
              budget='tokens', seeds=2, epochs=2, lr=3e-2, max_length=400, max_new_tokens=4, scorer=None)

def _files(folder): return {p: p.stat().st_mtime_ns for p in Path(folder).rglob('*') if p.is_file() and p.suffix in ('.json', '.jsonl', '.parquet', '.safetensors')}

@pytest.fixture(scope='module')
def seeded(tiny, tmp_path_factory):
    "A seeds=2, budget=tokens run killed in the middle of its IFEval answers and resumed, and the same run uninterrupted."
    root, mp = tmp_path_factory.mktemp('seeded'), pytest.MonkeyPatch()
    settings = lambda out: ev.EvaluateSettings(**{**SEEDED, 'base': tiny, 'scorer': tiny, 'out': out})
    real = {k: getattr(ev, k) for k in ('finetune', 'reference_nll', 'ifeval_answers', 'score_ifeval')}
    calls = {k: [] for k in real}
    def counted(k, kill_at=None):
        def f(*a, **kw):
            calls[k].append(1)
            if kill_at and len(calls[k]) == kill_at: raise KeyboardInterrupt
            return real[k](*a, **kw)
        return f
    for k in real: mp.setattr(ev, k, counted(k, kill_at=3 if k == 'ifeval_answers' else None))
    with pytest.raises(KeyboardInterrupt): ev.evaluate_job(settings(root/'killed'), progress=False)
    first = {k: len(v) for k, v in calls.items()}; before = _files(root/'killed')
    for k in real: calls[k].clear(); mp.setattr(ev, k, counted(k))
    summary = ev.evaluate_job(settings(root/'killed'), progress=False)
    again = {k: len(v) for k, v in calls.items()}
    mp.undo()
    whole = ev.evaluate_job(settings(root/'whole'), progress=False)
    return dict(root=root, first=first, again=again, before=before, summary=summary, whole=whole)

def test_resume_after_a_kill_recomputes_nothing_finished(seeded):
    # killed run: 4 models trained (2 selections x 2 seeds), then base and one model measured, the third killed in its IFEval answers
    assert seeded['first'] == {'finetune': 4, 'reference_nll': 6, 'ifeval_answers': 3, 'score_ifeval': 2}
    # rerun: no training, reference loss for the 2 models left (2 sets each), IFEval answers and scores for the 3 left
    assert seeded['again'] == {'finetune': 0, 'reference_nll': 4, 'ifeval_answers': 3, 'score_ifeval': 3}
    after = _files(seeded['root']/'killed')
    changed = [p for p, t in seeded['before'].items() if after[p] != t and p.parent.name != 'selections']  # the inputs are written at each start
    assert changed == []  # every finished model, answer and score file untouched
    a, b = (pd.read_parquet(seeded['root']/r/'results.parquet') for r in ('killed', 'whole'))
    pd.testing.assert_frame_equal(a, b)

def test_seeds_train_every_selection_with_the_same_seeds(seeded):
    run = seeded['root']/'whole'
    train = {p.name: json.loads((p/'train.json').read_text()) for p in (run/'models').iterdir()}
    assert sorted(train) == ['longest_0.1.seed0', 'longest_0.1.seed1', 'random_0.1.seed0', 'random_0.1.seed1']
    assert {k: v['seed'] for k, v in train.items()} == {k: int(k[-1]) for k in train}
    nll = [pd.read_parquet(run/'reference'/'alpaca-eval-gpt4'/f'random_0.1.seed{k}.parquet').nll for k in (0, 1)]
    assert (nll[0] - nll[1]).abs().max() > 1e-4  # another seed, another model
    res = pd.read_parquet(run/'results.parquet').set_index(['selection', 'eval_set', 'metric'])
    one = res.loc[('random:0.1', 'alpaca-eval-gpt4', 'reference_nll')]
    assert one.seeds == 2 and one.value == pytest.approx(pd.concat(nll).mean())  # the mean over seeds and records
    assert res.loc[('base', 'alpaca-eval-gpt4', 'reference_nll')].seeds == 1

def test_token_budget_end_to_end(seeded, tiny):
    run, s = seeded['root']/'whole', seeded['whole']
    pool = load('alpaca', limit=60)
    sels = dict(ev.selection(x, pool, seed=0) for x in SEEDED['selections'])
    tok = {n: response_tokens(v, tiny.tokenizer, 'alpaca', 400) for n, v in sels.items()}
    keep = token_budget(tok)
    for n, v in s['selections'].items():
        trained = json.loads((run/'models'/f"{n.replace(':', '_')}.seed0"/'train.json').read_text())
        assert v['kept'] == keep[n] == trained['records'] and trained['response_tokens'] == v['response_tokens'] == tok[n][:keep[n]].sum()
        assert len(load(run/'selections'/f"{n.replace(':', '_')}.jsonl")) == keep[n]
    budget = min(t.sum() for t in tok.values())
    assert all(abs(v['response_tokens'] - budget) <= max(tok[n]) / 2 for n, v in s['selections'].items())
    assert keep['longest:0.1'] < keep['random:0.1']  # long answers: fewer records for the same tokens

def test_results_parquet_columns_and_rows(seeded):
    res = pd.read_parquet(seeded['root']/'whole'/'results.parquet')
    need = {'selection', 'eval_set', 'metric', 'value', 'ci_low', 'ci_high', 'n', 'seeds', 'compared_to', 'diff', 'diff_low', 'diff_high',
            'response_tokens', 'answer_tokens'}
    assert need <= set(res.columns)
    # 3 models (base + 2 selections) x (2 reference sets + the summary across styles + IFEval's 4 metrics)
    assert len(res) == 3 * 7 and not res.duplicated(['selection', 'eval_set', 'metric']).any()
    assert res.groupby('metric').size().to_dict() == {'reference_nll': 6, 'reference_nll_diff': 3, **dict.fromkeys(IFEVAL_METRICS, 3)}
    assert set(res[res.metric == 'reference_nll'].answer_style) == {'long, model-written', 'human'}
    assert res.response_tokens.isna().tolist() == (res.selection == 'base').tolist() and res.answer_tokens.notna().all()
    assert (res.compared_to == 'random:0.1').all()  # no 'full' among the selections: the first one
    st = res[res.metric == 'reference_nll_diff'].set_index('selection')
    assert (st.sets == 2).all() and st.loc['random:0.1', 'value'] == 0
    per = res[res.metric == 'reference_nll'].set_index(['selection', 'eval_set'])['diff']
    assert st.loc['longest:0.1', 'value'] == pytest.approx(per['longest:0.1'].mean())
    summary = json.loads((seeded['root']/'whole'/'summary.json').read_text())
    assert len(summary['results']) == len(res) and summary['headline'] == summary['results'] and summary['seeds'] == [0, 1]

class _LongerJudge:
    "Scores the longer answer 8 and the other 4: it agrees with GPT-4-over-davinci on most validation pairs."
    def __call__(self, msgs):
        sizes = [[len(u.split(f"Assistant {k}'s Answer]\n")[1].split('[The End')[0]) for k in (1, 2)] for _, u in msgs]
        return [f"{8 if a > b else 4} {8 if b > a else 4}" for a, b in sizes]

@pytest.mark.parametrize('judge,pairs,passed', [(_LongerJudge(), 30, True), (_Judge(), 30, False), (_LongerJudge(), 0, None)])
def test_the_judge_gate_decides_whether_verdicts_are_results(tiny, tmp_path, judge, pairs, passed):
    s = ev.EvaluateSettings(pool='alpaca', selections=['random:0.1', 'longest:0.1'], out=tmp_path/'run', base=tiny, limit=40,
                            evals={'vicuna-80': 2}, judge=judge, judge_pairs=pairs, against='random:0.1', budget='steps', epochs=1,
                            max_length=400, max_new_tokens=4, scorer=tiny)
    summary = ev.evaluate_job(s, progress=False)
    res = pd.read_parquet(tmp_path/'run'/'results.parquet'); wins = res[res.metric == 'winning_score']
    v = summary['judge_validation']
    if passed is None: assert v is None and not (tmp_path/'run'/'judge_validation.json').exists()
    else:
        saved = json.loads((tmp_path/'run'/'judge_validation.json').read_text())
        assert saved == v and v['n'] == pairs and v['passed'] is passed
    assert len(wins) == 1 and wins.validated.tolist() == [bool(passed)]
    assert wins.note.tolist() == [None if passed else 'judge not validated']
    shown = {r['metric'] for r in summary['headline']}
    assert ('winning_score' in shown) == bool(passed)  # a failed or skipped validation keeps the verdicts out of the headline
