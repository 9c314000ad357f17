"""mkdocs.yml and its hook: every page is reachable from the nav, and the notes fill their section."""
import re
import sys
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tools"))
import mkdocs_hooks  # noqa: E402


def nav_pages(entries):
    """The page paths in a (nested) mkdocs nav."""
    for entry in entries:
        value = next(iter(entry.values())) if isinstance(entry, dict) else entry
        if isinstance(value, list):
            yield from nav_pages(value)
        else:
            yield value


def test_every_page_of_the_reading_path_is_in_the_nav():
    """A page missing from the nav builds, but a reader never finds it: list it in mkdocs.yml (or in the
    commented Checkpoints placeholder there, for pages still being written in other branches)."""
    text = (REPO / "mkdocs.yml").read_text()
    listed = set(nav_pages(yaml.safe_load(text)["nav"]))
    placeholders = set(re.findall(r"^\s*#\s*-\s*(\S+\.md)\s*$", text, re.M))
    pages = {p.name for p in (REPO / "docs").glob("*.md")}
    assert pages - listed - placeholders == set()
    assert listed - placeholders == listed  # a page is either in the nav or waiting, not both


def test_hook_appends_every_note_once_index_first(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    for name in ["b-matmul-rounds.md", "index.md", "a-attention-rounds.md", "figures.md"]:
        (notes / name).write_text("# x\n")
    (notes / "image.png").write_bytes(b"")  # not a page
    config = {"docs_dir": str(tmp_path),
              "nav": [{"Home": "index.md"}, {"Notes": ["notes/index.md", {"Figures": "notes/figures.md"}]}]}
    config = mkdocs_hooks.on_config(config)
    assert config["nav"][0] == {"Home": "index.md"}
    assert config["nav"][1]["Notes"] == ["notes/index.md", {"Figures": "notes/figures.md"},
                                         "notes/a-attention-rounds.md", "notes/b-matmul-rounds.md"]


def test_hook_leaves_a_config_without_nav_alone(tmp_path):
    config = {"docs_dir": str(tmp_path), "nav": None}
    assert mkdocs_hooks.on_config(config) is config and config["nav"] is None


def test_the_index_map_names_files_that_exist():
    """docs/index.md maps each lesson to its files and tests; a renamed file must be renamed there too.
    In a cell, `lessons/l01_gguf.py`, `l01a_gguf_values.py` means both are in lessons/."""
    named = []
    for line in (REPO / "docs" / "index.md").read_text().splitlines():
        for cell in line.split("|")[1:-1]:
            folder = ""
            for token in re.findall(r"`([^`]+\.py)`", cell):
                if "/" in token:
                    folder = token.rsplit("/", 1)[0] + "/"
                    named.append(token)
                else:
                    named.append(folder + token)
    assert len(named) > 30
    assert [p for p in named if not (REPO / p).is_file()] == []


SNIPPET = re.compile(r'--8<-- "([^"]+)"')


def test_snippets_are_named_sections_not_line_ranges():
    """A line range (`file.py:10:30`) silently shows the wrong lines once the file changes; a named
    section (`# --8<-- [start:name]` in the source) moves with the code, and a missing one fails the build."""
    uses = [(md.name, ref) for md in sorted((REPO / "docs").rglob("*.md"))
            for ref in SNIPPET.findall(md.read_text())]
    assert len(uses) > 50
    assert [u for u in uses if re.search(r":\d+(:\d+)?$", u[1]) or ":" not in u[1]] == []
