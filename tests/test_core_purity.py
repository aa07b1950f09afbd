"""p2p.core is sans-IO: it must not import I/O, the clock or OS randomness."""

import ast
import pathlib

import pytest

CORE = pathlib.Path(__file__).resolve().parent.parent / "p2p" / "core"
FORBIDDEN = {"trio", "sqlite3", "sqlite_utils", "socket", "os", "time", "datetime", "random",
             "secrets", "asyncio", "selectors", "subprocess", "threading", "zeroconf"}


@pytest.mark.parametrize("path", sorted(CORE.rglob("*.py")), ids=lambda p: p.name)
def test_core_module_is_pure(path):
    tree = ast.parse(path.read_text(), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names = [node.module or ""]
        else:
            continue
        for name in names:
            assert name.split(".")[0] not in FORBIDDEN, f"{path.name} imports {name}"
        assert not any(n == "nacl.utils" for n in names), f"{path.name} draws OS randomness via nacl.utils"
