#!/usr/bin/env python3
"""Write README.md from nbs/index.ipynb (Quarto cannot run offline); `--check` fails when they differ."""
import json, sys
from pathlib import Path

root = Path(__file__).resolve().parents[1]

def render(nb):
    out = []
    for cell in nb['cells']:
        src = ''.join(cell['source'])
        if cell['cell_type'] == 'markdown': out.append(src)
        elif not src.lstrip().startswith('#| hide'): out.append(f"```python\n{src}\n```")
    return '\n\n'.join(out).replace('\n> ', '\n> ', 1) + '\n'

if __name__ == '__main__':
    text = render(json.loads((root/'nbs'/'index.ipynb').read_text()))
    if '--check' in sys.argv:
        if (root/'README.md').read_text() != text: sys.exit("README.md is out of step with nbs/index.ipynb: run .ci/readme.py")
    else: (root/'README.md').write_text(text)
