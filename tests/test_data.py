import json
import pandas as pd, pytest
from select_nb.data.named import DATASETS
from select_nb.data.formats import DataError
from select_nb.data.load import load
from select_nb.data.runs import write_records, selection_path

GOOD = {"instruction": "Say hi", "input": "", "output": "Hi"}

def _write(tmp_path, name, content):
    p = tmp_path/name
    p.write_bytes(content if isinstance(content, bytes) else content.encode())
    return p

@pytest.mark.parametrize('name', list(DATASETS))
def test_every_named_dataset_loads(name):
    t = load(name)
    assert len(t) > 0 and t.id.notna().all()
    assert (t.instruction.str.strip() != '').all()

@pytest.mark.parametrize('fname,content,msg', [
    ('m.jsonl', json.dumps(GOOD) + '\n{"instruction": "x", "output": \n', "record 1: malformed JSON"),
    ('m.json', '[' + json.dumps(GOOD) + ',', "malformed JSON"),
    ('r.jsonl', json.dumps(GOOD) + '\n{"instruction": "Bye", "input": ""}\n', "record 1, field 'output': missing field"),
    ('i.json', '[{"output": "x"}]', "record 0, field 'instruction': missing field"),
    ('s.json', '[{"instruction": "Count", "output": 3}]', "record 0, field 'output': expected a string, got int"),
    ('e.json', '', "empty file"),
    ('u.json', b'[{"instruction": "Caf\xe9", "output": "ok"}]', "record 0, field 'instruction': non-UTF-8 bytes"),
])
def test_bad_input_names_file_record_field(tmp_path, fname, content, msg):
    p = _write(tmp_path, fname, content)
    with pytest.raises(DataError) as e: load(p)
    assert msg in str(e.value) and fname in str(e.value)

def test_soft_problems_are_recorded_skips_or_strict_errors(tmp_path):
    p = _write(tmp_path, 'd.json', json.dumps([GOOD, GOOD, {"instruction": "Bye", "output": " "}]))
    t = load(p)
    assert list(t.error.fillna('ok')) == ['ok', 'duplicate of record 0', "field 'output': empty response"]
    with pytest.raises(DataError, match="record 1: duplicate of record 0"): load(p, strict=True)

def test_lenient_keeps_bad_records_with_reason(tmp_path):
    p = _write(tmp_path, 'm.jsonl', json.dumps(GOOD) + '\nnot json\n{"instruction": "x", "output": 5}\n')
    t = load(p, lenient=True)
    assert len(t) == 3 and t.error.isna().tolist() == [True, False, False]
    assert 'malformed JSON' in t.error[1] and 'expected a string' in t.error[2]

def test_lenient_keeps_a_non_utf8_record_as_a_skip(tmp_path):
    p = _write(tmp_path, 'u.jsonl', (json.dumps(GOOD) + '\n').encode() + b'{"instruction": "Caf\xe9", "output": "ok"}\n')
    t = load(p, lenient=True)
    assert t.error.isna().tolist() == [True, False] and "field 'instruction': non-UTF-8 bytes" in t.error[1]
    assert t.instruction[1] == 'Caf\ufffd' and t.raw[1]['instruction'].encode('utf-8', 'surrogateescape') == b'Caf\xe9'

def test_formats_and_field_names(tmp_path):
    conv = [{"conversations": [{"from": "human", "value": "Q1"}, {"from": "gpt", "value": "A1"},
                               {"from": "human", "value": "Q2"}, {"from": "gpt", "value": "A2"}]}]
    t = load(_write(tmp_path, 'c.json', json.dumps(conv)))
    assert (t.instruction[0], t.response[0]) == ("USER: Q1\nASSISTANT: A1\nUSER: Q2", "A2")
    t = load(_write(tmp_path, 'r.jsonl', json.dumps({"instruction": "a", "response": "b"}) + '\n'))
    assert t.response[0] == 'b'
    df = pd.DataFrame({'q': ['a?'], 'ans': ['b']})
    assert load(df, fields={'instruction': 'q', 'response': 'ans'}).response[0] == 'b'

def test_selection_round_trips_in_input_format(tmp_path):
    t = load('alpaca', limit=20)
    sel = t.iloc[[3, 1]]
    p = write_records(sel, selection_path(t, tmp_path))
    assert p.suffix == '.json' and json.loads(p.read_text())[0] == t.raw.iloc[3]
    for ext in ('.jsonl', '.parquet', '.csv'):
        assert list(load(write_records(sel, tmp_path/f's{ext}')).id) == list(sel.id)

def test_missing_named_dataset_says_where_it_looked():
    with pytest.raises(DataError, match="looked for /nowhere/alpaca/seed_tasks.jsonl"): load('alpaca-seed', data='/nowhere')


# --- issue 14: data as users hold it (Hugging Face datasets, chat messages, None/NaN) ---------------
import math
from pathlib import Path
import datasets, numpy as np, pyarrow as pa, pyarrow.parquet as pq
from select_nb.core.env import data_dir
from select_nb.core.records import VICUNA_SYSTEM
from select_nb.data.load import Source
from select_nb.data.formats import read_rows
datasets.disable_progress_bars()

def _scar_rows(n=12):
    "Real single-turn ShareGPT records (SCAR's human-response pool)."
    return json.loads((data_dir()/'scar/open/human/id_selection/1000.json').read_text())[:n]

def _mt_chat():
    "The 30 MT-Bench questions with GPT-4 reference answers as two-turn chat `messages` with a system prompt."
    qs = {q['question_id']: q['turns'] for q in read_rows(data_dir()/'eval/mt_bench_80.jsonl')}
    def chat(r):
        q, a = qs[r['question_id']], r['choices'][0]['turns']
        return {'question_id': r['question_id'], 'messages': [{'role': 'system', 'content': VICUNA_SYSTEM},
                {'role': 'user', 'content': q[0]}, {'role': 'assistant', 'content': a[0]},
                {'role': 'user', 'content': q[1]}, {'role': 'assistant', 'content': a[1]}]}
    return [chat(r) for r in read_rows(data_dir()/'eval/mt_bench_reference_gpt4.jsonl')]

def _sharegpt(row):
    "The same conversation in ShareGPT form."
    who = {'system': 'system', 'user': 'human', 'assistant': 'gpt'}
    return {'question_id': row['question_id'], 'conversations': [{'from': who[m['role']], 'value': m['content']} for m in row['messages']]}

def test_chat_messages_multi_turn_keep_flat_record_and_turns():
    rows = _mt_chat()
    t = load(pd.DataFrame(rows))
    m = rows[0]['messages']
    assert t.instruction[0] == f"SYSTEM: {VICUNA_SYSTEM}\nUSER: {m[1]['content']}\nASSISTANT: {m[2]['content']}\nUSER: {m[3]['content']}"
    assert t.response[0] == m[4]['content'] and t.input[0] == ''
    assert t.turns[0] == m and t.error.isna().all() and len(t) == 30
    s = load(pd.DataFrame([_sharegpt(r) for r in rows]))  # ShareGPT form: same records, same turns
    assert list(s.id) == list(t.id) and list(s.turns) == list(t.turns)

def test_single_turn_conversations_have_no_turns():
    t = load(pd.DataFrame(_scar_rows()))
    assert t.turns.isna().all() and t.instruction[0] == _scar_rows(1)[0]['conversations'][0]['value']

def _forms(rows, tmp_path):
    "The same rows as every input form a user may hold."
    ds = datasets.Dataset.from_list(rows)
    (tmp_path/'r.json').write_text(json.dumps(rows))
    (tmp_path/'r.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    ds.to_parquet(str(tmp_path/'r.parquet'))
    ds.save_to_disk(str(tmp_path/'ds'))
    dd = datasets.DatasetDict(train=ds, test=ds.select(range(3)))
    dd.save_to_disk(str(tmp_path/'dd'))
    return {'json': (tmp_path/'r.json', {}), 'jsonl': (tmp_path/'r.jsonl', {}), 'parquet': (tmp_path/'r.parquet', {}),
            'arrow-dataframe': (pq.read_table(tmp_path/'r.parquet').to_pandas(), {}), 'dataset-dataframe': (ds.to_pandas(), {}),
            'dataset': (ds, {}), 'datasetdict': (dd, {'split': 'train'}), 'disk-dataset': (tmp_path/'ds', {}),
            'disk-datasetdict': (tmp_path/'dd', {'split': 'train'})}

FORMS = ['json', 'jsonl', 'parquet', 'arrow-dataframe', 'dataset-dataframe', 'dataset', 'datasetdict', 'disk-dataset', 'disk-datasetdict']

@pytest.mark.parametrize('kind', ['sharegpt', 'messages'])
@pytest.mark.parametrize('form', FORMS)
def test_every_input_form_gives_the_same_records(tmp_path, form, kind):
    rows = _mt_chat()[:8] if kind == 'messages' else _scar_rows(8)
    ref = load(pd.DataFrame(rows))
    src, kw = _forms(rows, tmp_path)[form]
    t = load(src, **kw)
    assert list(t.id) == list(ref.id) and t.error.isna().all()
    assert list(t.turns) == list(ref.turns)
    if isinstance(src, pd.DataFrame): assert isinstance(src.iloc[0, 1], np.ndarray)  # nested values arrive as numpy arrays

@pytest.mark.parametrize('form', FORMS)
def test_selection_round_trips_in_every_form(tmp_path, form):
    rows = _mt_chat()[:8]
    src, kw = _forms(rows, tmp_path)[form]
    t = load(src, **kw)
    sel = t.iloc[[5, 0, 3]]
    p = write_records(sel, selection_path(t, tmp_path/'run'))
    want = [rows[5], rows[0], rows[3]]
    if form.startswith('disk') or form.startswith('dataset'):
        if not form.endswith('dataframe'):
            assert p.is_dir() and datasets.load_from_disk(str(p)).to_list() == want
            assert datasets.load_from_disk(str(p)).features == datasets.Dataset.from_list(rows).features
            return
    if form == 'parquet':
        assert p.suffix == '.parquet' and pq.read_table(p).to_pylist() == want
        assert pa.types.is_list(pq.read_schema(p).field('messages').type)  # nested, not JSON text
    else: assert read_rows(p) == want
    assert list(load(p).id) == list(sel.id)

def test_csv_and_flat_parquet_round_trip(tmp_path):
    rows = json.loads((data_dir()/'dolly/dolly_3k.json').read_text())[:10]
    pd.DataFrame(rows).to_csv(tmp_path/'d.csv', index=False); pd.DataFrame(rows).to_parquet(tmp_path/'d.parquet')
    for name in ('d.csv', 'd.parquet'):
        t = load(tmp_path/name); sel = t.iloc[[7, 2]]
        p = write_records(sel, selection_path(t, tmp_path/name.replace('.', '_')))
        assert p.suffix == Path(name).suffix and read_rows(p) == [rows[7], rows[2]]

def test_none_and_nan_optional_fields_are_empty(tmp_path):
    rows = json.loads((data_dir()/'alpaca/alpaca_random_9k.json').read_text())[:6]
    want = load(pd.DataFrame(rows))
    df = pd.DataFrame(rows).replace({'input': {'': None}})
    df.loc[0, 'input'] = np.nan
    assert df.input.isna().sum() >= 2
    for src in (df, datasets.Dataset.from_pandas(df, preserve_index=False)):
        t = load(src)
        assert list(t.id) == list(want.id) and t.error.isna().all()
    df.to_parquet(tmp_path/'a.parquet')
    t = load(tmp_path/'a.parquet')
    assert list(t.id) == list(want.id)
    back = json.loads(write_records(load(df).iloc[[0]], tmp_path/'a.json').read_text())
    assert back[0]['input'] is None and back[0]['output'] == rows[0]['output']  # NaN is written as JSON null

def test_null_instruction_or_response(tmp_path):
    rows = json.loads((data_dir()/'alpaca/alpaca_random_9k.json').read_text())[:4]
    rows[1]['instruction'] = None; rows[2]['output'] = None
    pd.DataFrame(rows).to_parquet(tmp_path/'n.parquet')
    with pytest.raises(DataError) as e: load(tmp_path/'n.parquet')
    assert "n.parquet, record 1, field 'instruction': empty instruction" in str(e.value)
    t = load(tmp_path/'n.parquet', lenient=True)
    assert list(t.error.fillna('ok')) == ['ok', "field 'instruction': empty instruction", "field 'output': empty response", 'ok']

@pytest.mark.parametrize('turn,field,msg', [
    ({'role': 'tool', 'content': 'x'}, 'messages.1.role', "unknown role 'tool'"),
    ({'role': 'user', 'content': 7}, 'messages.1.content', "expected a string, got int"),
    ('hi', 'messages.1', "expected an object, got str"),
])
def test_bad_chat_turns_name_file_record_turn(tmp_path, turn, field, msg):
    rows = _mt_chat()[:3]
    rows[2]['messages'][1] = turn
    (tmp_path/'c.jsonl').write_text(''.join(json.dumps(r) + '\n' for r in rows))
    with pytest.raises(DataError) as e: load(tmp_path/'c.jsonl')
    assert f"c.jsonl, record 2, field '{field}': {msg}" in str(e.value)
    t = load(tmp_path/'c.jsonl', lenient=True)
    assert t.error.notna().tolist() == [False, False, True]

def test_bad_datasets_input_is_a_clear_error(tmp_path):
    ds = datasets.Dataset.from_list(_scar_rows(4))
    dd = datasets.DatasetDict(train=ds, test=ds)
    with pytest.raises(DataError, match=r"no split None: pass split= one of \['train', 'test'\]"): load(dd)
    with pytest.raises(DataError, match="no split 'dev'"): load(dd, split='dev')
    assert len(load(datasets.DatasetDict(train=ds))) == 4  # one split needs no name
    (tmp_path/'notds').mkdir()
    with pytest.raises(DataError, match="notds: not a `save_to_disk` folder"): load(tmp_path/'notds')
    (tmp_path/'x.txt').write_text('hi')
    with pytest.raises(DataError, match="unknown format '.txt'"): load(tmp_path/'x.txt')

def test_dotted_fields_reach_nested_arrow_values(tmp_path):
    ref = read_rows(data_dir()/'eval/mt_bench_reference_gpt4.jsonl')[:5]
    pd.DataFrame(ref).to_parquet(tmp_path/'ref.parquet')  # `choices` becomes a numpy array of structs in pandas
    f = {'instruction': 'answer_id', 'response': 'choices.0.turns.1'}
    t = load(pq.read_table(tmp_path/'ref.parquet').to_pandas(), fields=f)
    assert list(t.response) == [r['choices'][0]['turns'][1] for r in ref]
    nested = [{'chat': {'messages': r['messages']}} for r in _mt_chat()[:3]]
    t = load(datasets.Dataset.from_list(nested), fields={'conversation': 'chat.messages'})
    assert list(t.id) == list(load(pd.DataFrame(_mt_chat()[:3])).id)

def test_source_carries_reading_options(tmp_path):
    df = pd.DataFrame({'prompt': ['What is 2+2?', 'Name a prime.', 'x'], 'completion': ['4', '7', None]})
    src = Source(df, fields={'instruction': 'prompt', 'response': 'completion'}, lenient=True)
    t = load(src, limit=2)
    assert list(t.response) == ['4', '7'] and str(Source('alpaca')) == 'alpaca'
    assert load(Source(datasets.DatasetDict(a=datasets.Dataset.from_pandas(df), b=datasets.Dataset.from_pandas(df)), split='b'),
                fields=src.fields).error.notna().sum() == 1
