"""The documentation's Python examples run as written: every ```python block of README.md and
docs/*.md that needs nothing of the user's (no run folder, image, exported file or config
fragment) runs in a fresh interpreter, from the clone's root, as a user pastes it."""
import pathlib
import re
import subprocess
import sys

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]
# what marks a block as needing the user's own files, or as a fragment of a config
NEEDS_THE_USER = re.compile(r"work_dirs/|'image\.jpg'|\.onnx'|_base_ =|^[^#\n]*\.\.\.", re.M)


def _blocks():
    for doc in [REPO / 'README.md', *sorted((REPO / 'docs').glob('*.md'))]:
        text = doc.read_text()
        for m in re.finditer(r'^```python\n(.*?)^```', text, re.M | re.S):
            line = text[:m.start()].count('\n') + 1
            yield f'{doc.relative_to(REPO)}:{line}', m.group(1)


RUNNABLE = [(where, code) for where, code in _blocks() if not NEEDS_THE_USER.search(code)]


def test_the_docs_have_runnable_examples():
    # the README's own examples (a torchvision model converted, the registry and a config
    # converted) must not be filtered out by the rule above
    assert sum(where.startswith('README.md') for where, _ in RUNNABLE) >= 2, RUNNABLE


@pytest.mark.parametrize('where, code', RUNNABLE, ids=[w for w, _ in RUNNABLE])
def test_a_python_example_of_the_docs_runs(where, code):
    done = subprocess.run([sys.executable, '-c', code], cwd=REPO, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, f'{where}:\n{code}\n{done.stderr[-3000:]}'
