#!/usr/bin/env python3
"""Write README.md from nbs/index.ipynb (Quarto cannot run offline); `--check` fails when they differ, or when the
reading order in nbs/index.ipynb leaves out a notebook under nbs/."""
import json, sys
from pathlib import Path
from kernelspec import notebooks

root = Path(__file__).resolve().parents[1]

def render(nb):
    out = []
    for cell in nb['cells']:
        src = ''.join(cell['source'])
        if cell['cell_type'] == 'markdown': out.append(src)
        elif not src.lstrip().startswith('#| hide'): out.append(f"```python\n{src}\n```")
    return '\n\n'.join(out) + '\n'

def unlisted(text):
    "The notebooks under nbs/ (index aside) that `text` does not name as `nbs/...ipynb`."
    return [str(p.relative_to(root)) for p in notebooks(root/'nbs') if p.name != 'index.ipynb' and f"`{p.relative_to(root)}`" not in text]

if __name__ == '__main__':
    text = render(json.loads((root/'nbs'/'index.ipynb').read_text()))
    if '--check' in sys.argv:
        if (root/'README.md').read_text() != text: sys.exit("README.md is out of step with nbs/index.ipynb: run .ci/readme.py")
        if missing := unlisted(text): sys.exit(f"the reading order in nbs/index.ipynb leaves out: {', '.join(missing)}")
    else: (root/'README.md').write_text(text)
