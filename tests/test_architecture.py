"""The package's layers (docs/architecture.md): no import cycles, and no layer imports a layer above it at module level."""

import ast
import re
from pathlib import Path

import emowork

PACKAGE = Path(emowork.__file__).parent
# lowest first; a module may import (at module level, type-only imports included) from its own layer and those below
LAYERS = [
    {"errors", "emotions", "paths", "progress", "storage", "intervals", "depth", "verdicts", "palette"},
    {"model"},
    {"hooks"},
    {"generation"},
    {"data", "prompts", "judge", "analysis"},
    {"components"},
    {"circuits"},
    {"plots", "findings", "figures"},
    {"panels", "pipeline", "cli", "notebook_pages", "__init__"},
]


def module_names() -> dict[str, tuple[Path, bool]]:
    names = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        package = parts[-1] == "__init__"
        names[".".join(parts[:-1] if package else parts)] = (path, package)
    return names


def module_level_imports(name: str, path: Path, package: bool, known: dict) -> set[str]:
    """emowork modules imported at module level (including ``if TYPE_CHECKING:`` blocks)."""
    nodes = []
    for node in ast.parse(path.read_text()).body:
        nodes += node.body if isinstance(node, ast.If) else [node]
    found = set()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            base = name.split(".") if package else name.split(".")[:-1]
            if node.level:
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            for alias in node.names:
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
    return {m for m in found if m in known and m != name}


def graph() -> dict[str, set[str]]:
    known = module_names()
    return {name: module_level_imports(name, path, package, known) for name, (path, package) in known.items()}


def layer_of(module: str) -> int:
    part = module.split(".")[1] if "." in module else "__init__"
    for index, layer in enumerate(LAYERS):
        if part in layer:
            return index
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS and docs/architecture.md")


def test_no_import_cycles():
    edges = graph()
    seen, on_path, cycles = set(), [], []

    def visit(node):
        if node in on_path:
            cycles.append(on_path[on_path.index(node):] + [node])
            return
        if node in seen:
            return
        seen.add(node)
        on_path.append(node)
        for nxt in sorted(edges[node]):
            visit(nxt)
        on_path.pop()

    for node in sorted(edges):
        visit(node)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_layer_imports_a_layer_above_it():
    wrong = [f"{a} -> {b}" for a, deps in graph().items() for b in deps if layer_of(b) > layer_of(a)]
    assert not wrong, "imports against the layers (docs/architecture.md): " + "; ".join(sorted(wrong))


def test_hook_names_go_through_the_site_table():
    """Hook names are built from SITE_HOOKS (emowork/hooks/sites.py), not typed as string literals elsewhere."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "sites.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.JoinedStr):
                text = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in node.values)
            elif isinstance(node, ast.Constant) and isinstance(node.value, str):
                text = node.value
            else:
                continue
            if re.fullmatch(r"blocks\.(\{[^}]*\}|\d+)\.(attn\.|mlp\.)?hook_(resid_pre|resid_mid|resid_post|attn_out|mlp_out|z|post)", text):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {text!r}")
    assert not offenders, "hook names typed as literals: " + "; ".join(offenders)
