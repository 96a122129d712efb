"""The package's levels (docs/architecture.md): each folder of normdet/ imports only the levels
below it, and only the glue (normdet/openmmlab/) imports mmcv, mmdet or mmengine. Read from the
source's import statements, those inside functions included."""
import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / 'normdet'
LEVELS = dict(utils=0, layers=1, norms=2, data=2, openmmlab=3, cli=4, study=5)
OPENMMLAB = ('mmcv', 'mmdet', 'mmengine')


def _modules():
    return sorted(p for p in PACKAGE.rglob('*.py') if '__pycache__' not in p.parts)


def _imports(path: pathlib.Path):
    """(absolute module name, line) of every import in ``path``."""
    package = ['normdet', *path.relative_to(PACKAGE).parent.parts]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            yield from ((a.name, node.lineno) for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            name = '.'.join(base + ([node.module] if node.module else []))
            if node.module is None:  # from . import a, b: each a module of the package
                yield from ((f'{name}.{a.name}', node.lineno) for a in node.names)
            else:
                yield name, node.lineno


def _folder(path: pathlib.Path):
    parts = path.relative_to(PACKAGE).parts
    return parts[0] if len(parts) > 1 else None


def test_every_folder_is_a_level():
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != '__pycache__'}
    assert folders == set(LEVELS)
    assert [p.name for p in PACKAGE.glob('*.py')] == ['__init__.py']


@pytest.mark.parametrize('path', _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_imports_go_down_and_only_the_glue_imports_openmmlab(path):
    folder = _folder(path)
    for name, line in _imports(path):
        top, *rest = name.split('.')
        where = f'{path.relative_to(PACKAGE)}:{line} imports {name}'
        if top in OPENMMLAB:
            assert folder == 'openmmlab', where + ': only normdet/openmmlab/ may'
        if top == 'normdet' and rest and rest[0] in LEVELS and folder is not None:
            assert LEVELS[rest[0]] <= LEVELS[folder], where + ': a level above its own'
            if LEVELS[rest[0]] == LEVELS[folder]:
                assert rest[0] == folder, where + ': a folder of the same level'
