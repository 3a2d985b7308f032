"The judge-validation gate, probability judging against a hand computation, and a validation that resumes from its log."
import json
import numpy as np, pandas as pd, pytest, torch
from select_nb.data.load import load
from select_nb.models.tiny import tiny_lm
from select_nb.eval.judge import JUDGE_PROMPT, JUDGE_SYSTEM, ProbJudge, judge_pairs, verdicts
from select_nb.eval.judge_validation import JUDGE_THRESHOLD, judge_passes, validate_judge, validation_pairs

def _answers(user):
    "The two answers inside a judge prompt."
    return [user.split(f"[The Start of Assistant {k}'s Answer]\n")[1].split("\n\n[The End")[0] for k in (1, 2)]

class _First:
    "Always prefers the answer shown first."
    name = 'first'
    def __call__(self, messages): return ["9 5\nThe first one." for _ in messages]

class _Oracle:
    "Knows GPT-4's answers; counts its calls; raises after `fail_after` calls (a killed run)."
    name = 'oracle'
    def __init__(self, fail_after=None): self.gpt4, self.calls, self.fail_after = set(load('alpaca-eval-gpt4').response), 0, fail_after
    def __call__(self, messages):
        out = []
        for _, u in messages:
            if self.fail_after is not None and self.calls >= self.fail_after: raise KeyboardInterrupt
            self.calls += 1; out.append("9 4" if _answers(u)[0] in self.gpt4 else "4 9")
        return out

def test_a_judge_that_prefers_the_first_answer_fails(tmp_path):
    v = validate_judge(_First(), n=24, out=tmp_path/'v.json', progress=False)
    assert (v['n'], v['accuracy'], v['consistency'], v['first_preference'], v['tie_rate']) == (24, 0.5, 0.0, 1.0, 0.0)
    assert not v['passed'] and not judge_passes(v)
    assert json.loads((tmp_path/'v.json').read_text()) == v  # stored with the run

def test_an_oracle_judge_passes(tmp_path):
    v = validate_judge(_Oracle(), n=24, out=tmp_path/'v.json', progress=False)
    assert (v['accuracy'], v['consistency'], v['verdict_accuracy'], v['first_preference']) == (1.0, 1.0, 1.0, 0.5)
    assert v['passed'] and v['threshold'] == JUDGE_THRESHOLD and v['accuracy_ci'] == [1.0, 1.0]

def test_too_few_pairs_do_not_pass(tmp_path):
    v = validate_judge(_Oracle(), n=JUDGE_THRESHOLD['pairs'] - 1, progress=False)
    assert v['accuracy'] == 1.0 and not v['passed']

def test_validation_resumes_from_its_log(tmp_path):
    f = tmp_path/'v.json'
    with pytest.raises(KeyboardInterrupt): validate_judge(_Oracle(fail_after=10), n=20, out=f, batch_size=4, progress=False)
    assert not f.exists() and len(f.with_suffix('.jsonl').read_text().splitlines()) == 8  # two finished batches of four
    again = _Oracle(); v = validate_judge(again, n=20, out=f, batch_size=4, progress=False)
    assert again.calls == 40 - 8 and v['passed']
    never = _Oracle(fail_after=0); assert validate_judge(never, n=20, out=f, progress=False) == v  # a rerun only reads
    more = _Oracle(); validate_judge(more, n=25, out=f, progress=False)
    assert more.calls == 10  # a larger n keeps the smaller n's pairs
    with pytest.raises(ValueError, match="its own file"): validate_judge(_First(), n=20, out=f, progress=False)

def test_validation_pairs_are_paired_and_seeded():
    p = validation_pairs(30, seed=1)
    gpt4, davinci = load('alpaca-eval-gpt4').set_index('instruction').response, load('alpaca-eval-davinci003').set_index('instruction').response
    assert list(p.better) == list(gpt4[p.instruction]) and list(p.worse) == list(davinci[p.instruction])
    assert list(validation_pairs(10, seed=1).id) == list(p.id[:10]) and list(validation_pairs(10, seed=2).id) != list(p.id[:10])

@pytest.fixture(scope='module')
def chat_lm():
    lm = tiny_lm(seed=3)
    lm.tokenizer.chat_template = "{% for m in messages %}<{{ m['role'] }}> {{ m['content'] }}\n{% endfor %}<assistant>"
    return lm

def _by_hand(lm, system, user):
    "Both expected scores from full forward passes (no cache): P(10) = P('1') P('0'|'1'), P(1) = P('1') - P(10), renormalised."
    tok = lm.tokenizer
    d = {k: tok.convert_tokens_to_ids(str(k)) for k in range(10)}
    assert tok.encode('10', add_special_tokens=False) == [d[1], d[0]]  # the tiny tokenizer writes numbers digit by digit, as Qwen does
    def after(ids): return torch.softmax(lm.model(torch.tensor([ids])).logits[0, -1].double(), -1)
    def expected(ids):
        p = after(ids); p10 = p[d[1]] * after(ids + [d[1]])[d[0]]
        w = np.array([(p[d[1]] - p10).item(), *[p[d[k]].item() for k in range(2, 10)], p10.item()])
        return (w / w.sum()) @ np.arange(1, 11), 1 + int(w.argmax())
    chat = tok.apply_chat_template([{'role': 'system', 'content': system}, {'role': 'user', 'content': user}], tokenize=False, add_generation_prompt=True)
    ids = tok(chat, add_special_tokens=False)['input_ids']
    e1, best = expected(ids)
    e2, _ = expected(ids + tok.encode(f"{best} ", add_special_tokens=False))
    return e1, e2

@torch.inference_mode()
def test_probability_judging_equals_a_hand_computation(chat_lm):
    q = load('vicuna-80', prompt_only=True).instruction[:3]
    msgs = [(JUDGE_SYSTEM, JUDGE_PROMPT.format(question=x, answer_1='Yes, here is how.', answer_2=f'No. {x}')) for x in q]
    got = ProbJudge(chat_lm)(msgs)
    for (s, u), g in zip(msgs, got):
        assert isinstance(g, tuple) and 1 <= g[0] <= 10 and 1 <= g[1] <= 10
        np.testing.assert_allclose(g, _by_hand(chat_lm, s, u), atol=1e-5)

def test_probability_judgements_are_never_unparsed_and_combine_by_the_mean(chat_lm, tmp_path):
    q = load('vicuna-80', prompt_only=True).head(4)
    a, b = pd.DataFrame({'id': q.id, 'answer': 'Short.'}), pd.DataFrame({'id': q.id, 'answer': 'A longer answer, with details.'})
    j = judge_pairs(q, a, b, ProbJudge(chat_lm), out=tmp_path/'j.jsonl', progress=False)
    assert j.score_a.notna().all() and j.score_b.notna().all()
    again = judge_pairs(q, a, b, lambda m: pytest.fail('the log holds every judgement'), out=tmp_path/'j.jsonl', progress=False)
    np.testing.assert_allclose(again.score_a, j.score_a)
    v = verdicts(j, combine='mean')
    margin = j.assign(m=j.score_a - j.score_b).groupby('id').m.mean()
    np.testing.assert_allclose(v.set_index('id').margin[margin.index], margin)
    assert list(v.verdict) == ['win' if m > 0 else 'loss' for m in v.margin]
