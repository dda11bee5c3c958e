"""The README's Python snippets ("Use it from Python" and the asyncio one
under "Python client and CLI"), run as written against a real cluster (only
the node list is replaced by the test cluster's), so the README cannot drift
from the client: every line must work and print what it says."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"
NODES_LINE = 'nodes = [f"http://127.0.0.1:810{i}" for i in range(1, 5)]'


def readme_python_snippet() -> str:
    text = README.read_text()
    section = text[text.index("## Use it from Python"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match, "no ```python block under 'Use it from Python'"
    code = match.group(1)
    assert NODES_LINE in code, "the snippet's node list changed: update this test"
    return code


def readme_asyncio_snippet() -> str:
    text = README.read_text()
    section = text[text.index("## Python client and CLI"):]
    match = re.search(r"```python\n(.*?)```", section, re.S)
    assert match and "asyncio.run(main())" in match.group(1), "no asyncio ```python block under 'Python client and CLI'"
    return match.group(1)


class FirstBookPrinted(Exception):
    """Ends the asyncio snippet's endless `async for` after its first print."""


def test_the_readme_python_snippets_run_as_written(cluster) -> None:
    code = readme_python_snippet().replace(NODES_LINE, f"nodes = {cluster.urls!r}")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("NEW 50000.00 0.01000 "), lines
    assert lines[2:5] == ["51000.00 NEW", "51500.00 NEW", "52000.00 NEW"], lines
    assert lines[5].startswith("refused: -2010 ") and "insufficient balance" in lines[5], lines
    assert lines[6] == "[['50000.00', '0.01000']] [['51000.00', '0.00100']]", lines  # the blocking client's stream_book
    assert len(lines) == 7, lines

    # The asyncio snippet uses the first one's `nodes`; it streams books for
    # ever, so its first printed book ends it.
    printed: list[str] = []

    def print_once(*args) -> None:
        printed.append(" ".join(str(a) for a in args))
        raise FirstBookPrinted

    try:
        exec(compile(readme_asyncio_snippet(), str(README), "exec"), {"__name__": "readme", "nodes": cluster.urls, "print": print_once})
    except FirstBookPrinted:
        pass
    assert len(printed) == 1, printed
    height, rest = printed[0].split(" ", 1)
    assert height.isdigit() and int(height) > 0, printed
    # Its own 0.010 joined the first snippet's 0.001 at 51000.00.
    assert rest == "[['50000.00', '0.01000']] [['51000.00', '0.01100'], ['51500.00', '0.00100'], ['52000.00', '0.00100']]", printed
