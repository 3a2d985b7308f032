"Closing the loop: fine-tuning, reference loss, pairwise judging and the evaluate job, with tiny models."
import json, threading
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
    first = tmp_path/'run'/'models'/'random_0.1'/'train.json'; stamp = first.stat().st_mtime_ns
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
    ref, test = ev._eval_tables({'alpaca-eval-gpt4': 3, 'mt-bench-reference-gpt4': 2, 'self-instruct': 2, 'vicuna-80': 2, 'lima-300': 2})
    assert list(ref) == ['alpaca-eval-gpt4', 'mt-bench-reference-gpt4', 'self-instruct'] and list(test) == ['vicuna-80', 'lima-300']
    assert not ref['mt-bench-reference-gpt4'].instruction.str.isdigit().any()  # the question text, not its id
