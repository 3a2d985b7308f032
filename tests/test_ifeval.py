"IFEval scoring with the official checkers: answers whose pass/fail is known per instruction, on prompts from the file itself."
import os
os.environ.setdefault('HF_HUB_OFFLINE', '1')
import numpy as np, pandas as pd
import pytest
from select_nb.data.formats import DataError
from if_verifiable.ifeval.instructions_util import count_sentences
from select_nb.eval.ifeval import (IFEVAL_METRICS, answers_path, ifeval_bootstrap, ifeval_groups, ifeval_metrics, ifeval_paired,
                                   ifeval_prompts, punkt_data, read_answers, save_answers, score_ifeval)

@pytest.fixture(scope='module')
def prompts(): return ifeval_prompts()

def answer(prompts, rows):
    "A table of answers (key, prompt, response) from (key, response) pairs, the prompt text taken from the file."
    text = prompts.set_index('key').prompt
    return pd.DataFrame([{'key': k, 'prompt': text[k], 'response': r} for k, r in rows])

LOWER = "the river runs past the old mill and the children wave at the boats as they drift slowly toward the quiet sea"
WORDS_110 = ' '.join(['word'] * 110)
JSON = '{"name": "Ada", "skills": ["math", "poetry"]}'
# (key, its instructions, an answer that passes every instruction, one that fails every instruction)
CASES = [
    (1001, ['punctuation:no_comma'], 'Cats sleep all day and hunt at night.', 'Cats sleep, eat, and hunt.'),
    (1092, ['length_constraints:number_words'], 'A short answer of seven words here.', ' '.join(['word'] * 300)),  # less than 300 words
    (1075, ['detectable_format:json_format'], JSON, 'name: Ada'),
    (1019, ['change_case:english_lowercase'], LOWER, LOWER.capitalize()),
    (1128, ['startend:end_checker'], 'Done. Is there anything else I can help with?', 'Is there anything else I can help with? Done.'),
    (2069, ['length_constraints:number_words'] * 2, WORDS_110, ' '.join(['word'] * 50)),  # 100 to 120 words: only "at least 100" fails
    (3084, ['punctuation:no_comma', 'startend:end_checker'], 'Hot sun on the salt\nLions nap in the dry grass\nI dream in India.',
     'Hot sun, dry grass, lions.'),
]

def test_prompts_from_file(prompts):
    test = prompts.set_index('key')
    for key, ids, *_ in CASES: assert test.instruction_id_list[key] == ids
    assert len(prompts) == 541 and prompts.instruction_id_list.str.len().sum() == 834
    assert list(ifeval_prompts(2).key) == [1000, 1001]

def test_known_pass_and_fail(prompts):
    good = score_ifeval(answer(prompts, [(k, p) for k, _, p, _ in CASES]))
    assert all(all(s) for s in good.strict) and all(all(l) for l in good.loose)
    bad = score_ifeval(answer(prompts, [(k, f) for k, _, _, f in CASES]))
    want = [[False], [False], [False], [False], [False], [False, True], [False, False]]
    assert list(bad.strict) == want and list(bad.loose) == want
    assert ifeval_metrics(good) == dict.fromkeys(IFEVAL_METRICS, 1.0)
    # failing answers: no prompt passes; 1 of the 9 instructions ("less than 121 words" on 50 words) passes
    assert ifeval_metrics(bad) == {'ifeval_prompt_strict': 0.0, 'ifeval_prompt_loose': 0.0, 'ifeval_inst_strict': 1/9, 'ifeval_inst_loose': 1/9}

def test_mixed_answers_by_hand(prompts):
    rows = [(k, p if i % 2 == 0 else f) for i, (k, _, p, f) in enumerate(CASES)]  # pass, fail, pass, fail, pass, fail, pass
    s = score_ifeval(answer(prompts, rows))
    assert list(s.prompt_strict) == [True, False, True, False, True, False, True]
    # instructions: 1 + 0 + 1 + 0 + 1 + 1 (of 2) + 2 = 6 of 9
    assert ifeval_metrics(s) == {'ifeval_prompt_strict': 4/7, 'ifeval_prompt_loose': 4/7, 'ifeval_inst_strict': 6/9, 'ifeval_inst_loose': 6/9}

def test_loose_variants(prompts):
    "Loose passes what strict fails: a preamble line, a trailing line, markdown asterisks."
    s = score_ifeval(answer(prompts, [(1075, 'Here is the JSON you asked for:\n' + JSON),
                                      (1128, 'Done. Is there anything else I can help with?\n(end of answer)'),
                                      (1001, '**Cats sleep all day and hunt at night.**'),
                                      (1019, 'Note: lowercase follows\n' + LOWER)]))
    assert list(s.strict) == [[False], [False], [True], [False]] and list(s.loose) == [[True], [True], [True], [True]]
    assert ifeval_metrics(s) == {'ifeval_prompt_strict': 1/4, 'ifeval_prompt_loose': 1.0, 'ifeval_inst_strict': 1/4, 'ifeval_inst_loose': 1.0}

def test_empty_answer_fails_every_instruction(prompts):
    s = score_ifeval(answer(prompts, [(3084, ''), (2069, '   ')]))
    assert list(s.strict) == [[False, False], [False, False]] and list(s.loose) == [[False, False], [False, False]]

def test_sentence_count_offline(prompts):
    "The sentence-count checker works with no download: NLTK's Punkt on the packaged parameters."
    punkt_data()
    assert count_sentences("Dr. Smith arrived at 5 p.m. today. He left. Why?") == 3
    key = 3691  # less than 10 sentences, and no commas
    s = score_ifeval(answer(prompts, [(key, ' '.join(['I walk home.'] * 9))]))
    assert s.strict[0] == [True, True]
    s = score_ifeval(answer(prompts, [(key, ' '.join(['I walk home.'] * 10))]))
    assert s.strict[0] == [False, True]

def test_bad_answers(prompts):
    a = answer(prompts, [(1001, 'ok')])
    with pytest.raises(DataError, match="record 7.*'key'"): score_ifeval(a.assign(key=7))
    with pytest.raises(DataError, match="'prompt'"): score_ifeval(a.assign(prompt='Write a poem.'))
    with pytest.raises(DataError, match="'response'"): score_ifeval(a.assign(response=None))
    with pytest.raises(DataError, match='answered twice'): score_ifeval(pd.concat([a, a]))
    with pytest.raises(DataError, match='lack columns'): score_ifeval(a.drop(columns='prompt'))

def toy(strict, loose, key0=0):
    "A scored table from per-prompt pass lists."
    return pd.DataFrame({'key': range(key0, key0 + len(strict)), 'instruction_id_list': [['punctuation:no_comma'] * len(s) for s in strict],
                         'strict': strict, 'loose': loose})

def test_metrics_toy():
    t = toy([[True, True], [True, False], [False]], [[True, True], [True, True], [False]])
    # prompts: strict 1 of 3, loose 2 of 3; instructions: strict 3 of 5, loose 4 of 5
    assert ifeval_metrics(t) == pytest.approx({'ifeval_prompt_strict': 1/3, 'ifeval_prompt_loose': 2/3, 'ifeval_inst_strict': 3/5, 'ifeval_inst_loose': 4/5})
    g = ifeval_groups(t)
    assert g.to_dict('records') == [{'group': 'punctuation', 'n': 5, 'strict': 0.6, 'loose': 0.8}]
    with pytest.raises(ValueError, match='no scored prompts'): ifeval_metrics(t.head(0))

def test_bootstrap_contains_estimate_and_shrinks():
    rng = np.random.default_rng(0)
    def table(n):
        s = [list(rng.random(rng.integers(1, 4)) < 0.3) for _ in range(n)]
        return toy(s, [[x or rng.random() < 0.3 for x in p] for p in s])
    small, large = ifeval_bootstrap(table(100)), ifeval_bootstrap(table(1600))
    for b in (small, large):
        assert list(b.metric) == list(IFEVAL_METRICS)
        assert (b.ci_low <= b.value).all() and (b.value <= b.ci_high).all() and (b.ci_low < b.ci_high).all()
    assert ((large.ci_high - large.ci_low) < (small.ci_high - small.ci_low) / 2).all()
    assert list(small.n) == [100] * 4

def test_paired_identical_is_zero():
    t = toy([[True, False], [True], [False]] * 20, [[True, True], [True], [False]] * 20)
    d = ifeval_paired(t, t.sample(frac=1, random_state=1))
    assert (d[['value', 'ci_low', 'ci_high']].to_numpy() == 0).all()
    better = t.assign(strict=[[True] * len(s) for s in t.strict], loose=[[True] * len(s) for s in t.loose])
    d = ifeval_paired(better, t)
    assert d.set_index('metric').value.to_dict() == pytest.approx({'ifeval_prompt_strict': 2/3, 'ifeval_prompt_loose': 1/3,
                                                                   'ifeval_inst_strict': 0.5, 'ifeval_inst_loose': 0.25})
    assert (d.ci_low > 0).all()
    with pytest.raises(ValueError, match='different prompts'): ifeval_paired(t, t.head(5))

def test_answers_round_trip(prompts, tmp_path):
    a = answer(prompts, [(k, p) for k, _, p, _ in CASES]).assign(n_tokens=np.arange(len(CASES)))
    p = save_answers(a, tmp_path, 'runs/sf selected', seed=2)
    assert p == answers_path(tmp_path, 'runs/sf selected', 2) == tmp_path/'answers'/'ifeval'/'runs_sf_selected.seed2.jsonl'
    back = read_answers(p)
    assert back.to_dict('records') == a.to_dict('records')
    assert list(score_ifeval(back).strict) == list(score_ifeval(a).strict)
