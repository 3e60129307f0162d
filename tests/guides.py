"""The pages of docs/guides: their ```python blocks run, in order, in an empty folder, and print
exactly the lines their `# ` comments show."""

import pathlib
import re

GUIDES = pathlib.Path(__file__).parents[1] / "docs" / "guides"


def check_guide(name, tmp_path, monkeypatch, capsys):
    guide = GUIDES / name
    code = "\n".join(re.findall(r"```python\n(.*?)```", guide.read_text(encoding="utf-8"), re.S))
    shown = [line[2:] for line in code.splitlines() if line.startswith("# ")]
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    exec(compile(code, str(guide), "exec"), {"__name__": "guide"})
    assert capsys.readouterr().out.splitlines() == shown
