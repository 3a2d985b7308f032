#!/usr/bin/env python3
"""Run notebooks in place so they keep their outputs (a guided tour in JupyterLab), skipping the cells
nbdev_test skips (`#| slow`, `#| gpu`, `#| notest`, `#| eval: false`) unless named with --flags.
Usage: .venv/bin/python .ci/execute_nbs.py [--flags slow] [--keep-skipped] nbs/engine/04c_scoring.ipynb ...   (then run nbdev_clean)
--keep-skipped: cells not run keep the outputs they had (else they are cleared).
Each notebook runs in its own folder (as nbdev_test runs it), so a relative path in it starts there."""
import argparse, os, re, sys
from pathlib import Path
os.environ.setdefault('HF_HUB_OFFLINE', '1')
from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from fastcore.xtras import working_directory

def skip(flags):
    def _skip(cell):
        if cell.cell_type != 'code': return True
        direc = {m.group(1).strip() for m in re.finditer(r'^#\|\s*([\w:-]+(?:\s+\w+)?)', cell.source, re.M)}
        if 'eval: false' in direc: return True
        return bool({'slow', 'gpu', 'notest'} - set(flags) & {d.split()[0] for d in direc})
    return _skip

if __name__ == '__main__':
    ap = argparse.ArgumentParser(); ap.add_argument('--flags', action='append', default=[]); ap.add_argument('--keep-skipped', action='store_true'); ap.add_argument('nbs', nargs='+')
    a = ap.parse_args()
    for fn in map(Path, a.nbs):
        nb = read_nb(fn)
        for c in nb.cells:
            if c.cell_type == 'code' and not (a.keep_skipped and skip(a.flags)(c)): c.outputs, c.execution_count = [], None
        sh = CaptureShell(fn.resolve())  # puts the notebook's folder on sys.path, as nbdev_test does
        with working_directory(fn.parent):
            sh.run_all(nb, exc_stop=True, preproc=skip(a.flags))
        write_nb(nb, fn); print('executed', fn, flush=True)
