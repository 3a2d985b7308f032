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
