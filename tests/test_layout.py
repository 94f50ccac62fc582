"""The design card: loba/ never imports the host; requirements never list torch; import is cheap."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HOST_MODULES = {"comfy", "comfy_api", "comfy_extras", "comfy_execution", "folder_paths", "server", "nodes", "execution"}


def imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


def test_engine_never_imports_comfyui():
    offenders = {str(p.relative_to(ROOT)): imported_roots(p) & HOST_MODULES for p in (ROOT / "loba").rglob("*.py")}
    assert not {k: v for k, v in offenders.items() if v}


def test_requirements_never_list_torch():
    for line in (ROOT / "requirements.txt").read_text().splitlines():
        name = line.split("#")[0].strip().split(">")[0].split("=")[0].split("<")[0].strip().lower()
        assert name not in {"torch", "torchvision", "torchaudio"}, line


def test_importing_the_engine_package_loads_no_torch():
    code = "import sys, loba, loba.config, loba.registry, loba.errors; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


SOURCE_FOLDERS = ("loba", "nodes", "benchmarks", "devtools", "tests", "scripts")
MAX_FILE_LINES, MAX_FUNCTION_LINES = 300, 50
# Declarative schemas (a node's inputs and outputs) are allowed to be long: they are one statement.
DECLARATIVE = {"define_schema"}


def python_files():
    top = [p for p in ROOT.glob("*.py")]
    return top + [p for folder in SOURCE_FOLDERS for p in (ROOT / folder).rglob("*.py")]


def test_no_file_over_300_lines_and_no_function_over_50():
    long_files = {str(p.relative_to(ROOT)): n for p in python_files() if (n := p.read_text().count("\n")) > MAX_FILE_LINES}
    long_functions = {}
    for path in python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name not in DECLARATIVE:
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions[f"{path.relative_to(ROOT)}:{node.name}"] = length
    assert not long_files and not long_functions


def test_tests_are_not_a_package_so_any_clone_name_works():
    # With tests/__init__.py pytest puts the clone's parent folder on sys.path, and a clone named `loba`
    # then shadows the engine package with the pack root (ImportError at collection).
    assert not (ROOT / "tests" / "__init__.py").exists()
    assert not list((ROOT / "tests").rglob("__init__.py"))


def test_the_shipped_engine_holds_no_test_only_code():
    assert not (ROOT / "loba" / "tiny_models.py").exists()
    names = {p.stem for p in (ROOT / "loba").rglob("*.py")}
    assert "tiny_models" not in names


def test_no_import_cycles_in_the_engine_nodes_or_benchmarks():
    from support.import_graph import cycles, import_graph

    for package in ("loba", "nodes", "benchmarks", "devtools"):
        assert not cycles(import_graph(ROOT, package)), package


def test_the_cycle_check_finds_a_cycle(tmp_path):
    from support.import_graph import cycles, import_graph

    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text("from .b import x\n")
    (tmp_path / "pkg" / "b.py").write_text("from . import a\nx = 1\n")
    assert cycles(import_graph(tmp_path, "pkg")) == [["pkg.a", "pkg.b"]]


def test_the_cycle_check_counts_a_package_init_as_imported(tmp_path):
    # The old targeting <-> adapters cycle: importing pkg.sub.lora runs pkg/sub/__init__.py, which imports back.
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "sub" / "__init__.py").write_text("from .network import N\n")
    (tmp_path / "pkg" / "sub" / "lora.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "sub" / "network.py").write_text("def late():\n    from ..targeting import T\n")
    (tmp_path / "pkg" / "targeting.py").write_text("from .sub.lora import x\n")
    from support.import_graph import cycles, import_graph

    assert cycles(import_graph(tmp_path, "pkg")) == [["pkg.sub", "pkg.sub.network", "pkg.targeting"]]
