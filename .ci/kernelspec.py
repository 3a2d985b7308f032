#!/usr/bin/env python3
"""Store the `select_nb` kernel and this Python's language_info in each notebook's metadata, exactly as JupyterLab
writes them when it starts the kernel, so a notebook opens without a "Select Kernel" dialog and is not marked
modified (nbdev_clean keeps both: `language_info` is in settings.ini's allowed_metadata_keys).
The kernel is registered by `.venv/bin/python -m ipykernel install --sys-prefix --name select_nb` (or `--user`).
Usage: .venv/bin/python .ci/kernelspec.py [--check] [nbs/X.ipynb ...]   (default: every notebook under nbs/, as nbdev finds them)"""
import json, sys
from pathlib import Path
from ipykernel.ipkernel import IPythonKernel

root = Path(__file__).resolve().parents[1]
KERNELSPEC = {'display_name': 'select_nb', 'language': 'python', 'name': 'select_nb'}

def wanted(): return {'kernelspec': KERNELSPEC, 'language_info': dict(IPythonKernel.language_info)}

def notebooks(folder:Path)->list:
    "Every notebook under `folder`, in its sub-folders too, skipping what nbdev skips: names starting with `_` or `.` (checkpoints)."
    return sorted(p for p in folder.rglob('*.ipynb') if not any(part.startswith(('_', '.')) for part in p.relative_to(folder).parts))

if __name__ == '__main__':
    check = '--check' in sys.argv
    fns = [Path(a) for a in sys.argv[1:] if a != '--check'] or notebooks(root/'nbs')
    bad = []
    for fn in fns:
        nb = json.loads(fn.read_text())
        if all(nb['metadata'].get(k) == v for k, v in wanted().items()): continue
        if check: bad.append(str(fn)); continue
        nb['metadata'].update(wanted())
        fn.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + '\n'); print('kernelspec stored in', fn)
    if bad: sys.exit(f"no select_nb kernelspec / this Python's language_info in: {', '.join(bad)}\n"
                     f"run .ci/kernelspec.py (they must match the kernel JupyterLab starts, or it marks the notebook modified)")
