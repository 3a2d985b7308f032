#!/usr/bin/env python3
"""Open a notebook in JupyterLab as a reader does, in headless Chromium, and run it from the menu.

Starts JupyterLab on 127.0.0.1 (a token, autosave off, settings in a temporary folder), opens the
notebook, checks that no "Select Kernel" dialog appears and that opening it does not mark it modified,
runs Run > Run All Cells, waits for every cell, then fails on any error or stderr output box. It saves a
screenshot and never saves the notebook: the file on disk must be byte-identical afterwards.
Usage: .venv/bin/python .ci/browser_check.py [nbs/index.ipynb ...] [--shot nbs/_out/browser_check.png]
Needs Chromium at /usr/bin/chromium (Debian: apt-get install -y chromium) and the `playwright` package."""
import argparse, hashlib, json, os, secrets, socket, subprocess, sys, tempfile, time, urllib.request
from pathlib import Path

root = Path(__file__).resolve().parents[1]
CHROMIUM_FLAGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
                  '--disable-component-update', '--disable-sync']
STDERR = '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]'

def free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

def start_lab(tmp, port, token):
    "Start JupyterLab at the repository root with autosave off; return the process once it answers."
    settings = tmp/'settings'/'@jupyterlab'/'docmanager-extension'
    settings.mkdir(parents=True)
    (settings/'plugin.jupyterlab-settings').write_text(json.dumps({'autosave': False}))
    (settings.parent/'apputils-extension').mkdir()
    (settings.parent/'apputils-extension'/'notification.jupyterlab-settings').write_text(json.dumps({'fetchNews': 'false'}))  # no news toast
    (settings.parent/'notebook-extension').mkdir()  # render every cell, so that an output far below the fold is checked too
    (settings.parent/'notebook-extension'/'tracker.jupyterlab-settings').write_text(json.dumps({'windowingMode': 'none'}))
    jupyter = Path(sys.executable).parent/'jupyter'
    cmd = [str(jupyter), 'lab', '--no-browser', '--allow-root', '--ip=127.0.0.1', f'--port={port}', f'--IdentityProvider.token={token}',
           f'--ServerApp.root_dir={root}', f'--LabApp.user_settings_dir={tmp/"settings"}', f'--LabApp.workspaces_dir={tmp/"ws"}',
           '--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate', '--LabApp.news_url=None']
    log = open(tmp/'lab.log', 'w')
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env={**os.environ, 'JUPYTER_RUNTIME_DIR': str(tmp/'rt')})
    for _ in range(120):
        try:
            urllib.request.urlopen(f'http://127.0.0.1:{port}/api/status?token={token}', timeout=2); return proc
        except OSError: time.sleep(0.5)
        if proc.poll() is not None: break
    proc.terminate(); sys.exit(f"JupyterLab did not start:\n{(tmp/'lab.log').read_text()[-3000:]}")

def prompts(page):
    return [t.strip() for t in page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-prompt').all_text_contents()]

def check(page, base, nb, shot, timeout):
    "Open `nb`, run all its cells from the menu, return a list of problems (empty when it passes)."
    problems, t0 = [], time.time()
    page.goto(f'{base}/lab/tree/{nb}?reset', wait_until='domcontentloaded')
    page.wait_for_selector('.jp-NotebookPanel .jp-Cell', timeout=120_000)
    indicator = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator')
    try: page.wait_for_function("() => document.querySelector('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Notebook-ExecutionIndicator')"
                                "?.getAttribute('data-status') === 'idle'", timeout=60_000)
    except Exception: problems.append(f'{nb}: the kernel never became idle (status {indicator.get_attribute("data-status")!r})')
    page.wait_for_timeout(2000)  # let a late dialog or metadata update land
    if page.locator('.jp-Dialog').count():
        problems.append(f'{nb}: a dialog opened: {page.locator(".jp-Dialog").first.inner_text()[:200]!r}')
    if page.locator('.lm-DockPanel-tabBar .lm-TabBar-tab.jp-mod-current.jp-mod-dirty').count():
        problems.append(f'{nb}: opening it marked it modified (its kernelspec or language_info differ from what the kernel reports: .ci/kernelspec.py)')
    if problems: return problems + shoot(page, shot)  # no kernel: running the cells would only wait
    n_code = len(prompts(page))
    page.locator('.lm-MenuBar-itemLabel', has_text='Run').first.click()
    page.locator('.lm-Menu-itemLabel', has_text='Run All Cells').first.click()
    deadline = time.time() + timeout
    while time.time() < deadline:
        p = prompts(page)
        done = all(x not in ('[ ]:', '[*]:', '') for x in p)
        idle = indicator.get_attribute('data-status') == 'idle'
        if idle and (done or page.locator(STDERR).count()): break  # finished, or stopped at an error
        page.wait_for_timeout(1000)
    else: problems.append(f'{nb}: cells not done after {timeout}s: {prompts(page)}')
    page.wait_for_timeout(1000)
    for box in page.locator(STDERR).all(): problems.append(f'{nb}: stderr/error output: {box.inner_text()[:300]!r}')
    if page.locator('.jp-Dialog').count(): problems.append(f'{nb}: a dialog is open: {page.locator(".jp-Dialog").first.inner_text()[:200]!r}')
    n_out = page.locator('.jp-NotebookPanel:not(.lm-mod-hidden) .jp-OutputArea-output').count()
    if n_code and not n_out: problems.append(f'{nb}: {n_code} code cells ran but nothing was shown')
    print(f'{nb}: {n_code} code cells, {n_out} outputs, prompts {prompts(page)}, {time.time()-t0:.0f}s', flush=True)
    return problems + shoot(page, shot)

def shoot(page, shot):
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True); print('screenshot', shot, flush=True)
    return []

def main():
    ap = argparse.ArgumentParser(); ap.add_argument('nbs', nargs='*', default=['nbs/index.ipynb'])
    ap.add_argument('--shot', default='nbs/_out/browser_check.png'); ap.add_argument('--timeout', type=int, default=600)
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright
    before = {nb: (root/nb).read_bytes() for nb in a.nbs}
    port, token, problems = free_port(), secrets.token_hex(16), []
    with tempfile.TemporaryDirectory() as tmp:
        lab = start_lab(Path(tmp), port, token)
        try:
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path='/usr/bin/chromium', headless=True, args=CHROMIUM_FLAGS)
                page = browser.new_page(viewport={'width': 1400, 'height': 1000})
                page.goto(f'http://127.0.0.1:{port}/lab?token={token}', wait_until='domcontentloaded')  # sets the auth cookie
                for i, nb in enumerate(a.nbs):
                    shot = root/a.shot if len(a.nbs) == 1 else (root/a.shot).with_stem(f'{Path(a.shot).stem}-{Path(nb).stem}')
                    problems += check(page, f'http://127.0.0.1:{port}', nb, shot, a.timeout)
                browser.close()
        finally:
            lab.terminate()
            try: lab.wait(30)
            except subprocess.TimeoutExpired: lab.kill()
    for nb, data in before.items():
        if (root/nb).read_bytes() != data:
            (root/nb).write_bytes(data); problems.append(f'{nb}: the file changed on disk (restored it)')
    if problems: sys.exit('browser check FAILED:\n' + '\n'.join(problems))
    print('browser check passed:', ', '.join(a.nbs))

if __name__ == '__main__': main()
