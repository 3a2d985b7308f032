import json, subprocess, sys
from pathlib import Path
import pandas as pd, pytest
from select_nb.cli import build_parser, main

def test_help_lists_subcommands():
    text = build_parser().format_help()
    for cmd in ('score', 'superfilter', 'list'): assert cmd in text

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
