import json
import pandas as pd, pytest
from select_nb.data import DATASETS, DataError, load, write_records, selection_path

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
