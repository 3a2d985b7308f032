"The house plan, checked: imports point down the layers (inside functions too), no circles, no private names across modules, modules under 300 lines."
import ast
from pathlib import Path
import pytest

PKG = Path(__file__).resolve().parents[1]/'select_nb'
# lowest first; a module may import its own layer or any layer below it, never one above
LAYERS = [('core',), ('data', 'models'), ('store',), ('engine',), ('run',), ('select',), ('train',), ('methods',), ('eval',), ('jobs',), ('cli',)]
RANK = {name: i for i, names in enumerate(LAYERS) for name in names}

def modules():
    "Every exported module: dotted name -> parsed tree."
    out = {}
    for p in sorted(PKG.rglob('*.py')):
        rel = p.relative_to(PKG).with_suffix('')
        if rel.name == '_modidx' or rel.name == '__init__' and len(rel.parts) == 1: continue
        name = '.'.join(rel.parts[:-1] if rel.name == '__init__' else rel.parts)
        out[name] = ast.parse(p.read_text())
    return out

def imports(name, tree):
    "(imported module, names, line) for every `select_nb` import in `tree`, at any depth, relative ones resolved."
    pkg = name.split('.')[:-1] if not name.endswith('__init__') else name.split('.')
    for n in ast.walk(tree):
        if isinstance(n, ast.ImportFrom):
            if n.level: base = '.'.join((pkg[:len(pkg) - n.level + 1] if n.level > 1 else pkg) + ([n.module] if n.module else []))
            elif n.module and n.module.split('.')[0] == 'select_nb': base = n.module[len('select_nb.'):] if '.' in n.module else ''
            else: continue
            yield base, [a.name for a in n.names], n.lineno
        elif isinstance(n, ast.Import):
            for a in n.names:
                if a.name.startswith('select_nb.'): yield a.name[len('select_nb.'):], [], n.lineno

def resolve(mod, names, mods):
    "The modules an import statement reaches (`from select_nb.engine import nll` reaches engine.nll)."
    if mod in mods: return [mod]
    subs = [f"{mod}.{x}" if mod else x for x in names]
    return [s for s in subs if s in mods]

def layer(mod): return RANK[mod.split('.')[0]]

def test_layers_known():
    "Every module sits in a known layer."
    assert not [m for m in modules() if m.split('.')[0] not in RANK]

def test_imports_point_down():
    mods = modules(); bad = []
    for name, tree in mods.items():
        for mod, names, line in imports(name, tree):
            for target in resolve(mod, names, mods):
                if layer(target) > layer(name): bad.append(f"{name}:{line} imports {target} (a higher layer)")
    assert not bad, '\n'.join(bad)

def test_no_circles():
    mods = modules()
    graph = {n: {t for m, ns, _ in imports(n, tr) for t in resolve(m, ns, mods) if t != n} for n, tr in mods.items()}
    seen, stack, circles = set(), [], []
    def visit(n):
        if n in stack: circles.append(' -> '.join(stack[stack.index(n):] + [n])); return
        if n in seen: return
        seen.add(n); stack.append(n)
        for t in sorted(graph[n]): visit(t)
        stack.pop()
    for n in sorted(graph): visit(n)
    assert not circles, '\n'.join(circles)

def test_methods_independent():
    "A method depends on the engine and the selection rules, never on another method."
    mods = modules(); bad = []
    method = lambda m: '.'.join(m.split('.')[:2]) if m.startswith('methods.') else None
    for name, tree in mods.items():
        if not method(name): continue
        for mod, names, line in imports(name, tree):
            for t in resolve(mod, names, mods):
                if method(t) and method(t) != method(name): bad.append(f"{name}:{line} imports {t}")
    assert not bad, '\n'.join(bad)

def test_no_private_names_across_modules():
    mods = modules()
    bad = [f"{n}:{line} imports {x} from {m}" for n, tr in mods.items() for m, names, line in imports(n, tr) for x in names if x.startswith('_')]
    assert not bad, '\n'.join(bad)

def test_no_name_exported_twice():
    "Each public name is defined by one module only."
    owner, bad = {}, []
    for name, tree in modules().items():
        for n in tree.body:
            if isinstance(n, (ast.FunctionDef, ast.ClassDef)) and not n.name.startswith('_'):
                if any(getattr(d, 'id', None) == 'patch' for d in n.decorator_list): continue
                if n.name in owner: bad.append(f"{n.name}: {owner[n.name]} and {name}")
                owner[n.name] = name
    assert not bad, '\n'.join(bad)

@pytest.mark.parametrize('path', sorted(p for p in PKG.rglob('*.py') if p.name != '_modidx.py'), ids=lambda p: str(p.relative_to(PKG)))
def test_module_size(path):
    assert len(path.read_text().splitlines()) <= 300
