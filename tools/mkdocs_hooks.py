"""MkDocs hook (mkdocs.yml: `hooks:`): fills the nav's "Notes" section with every page in docs/notes/.

Measurement logs and design notes land in docs/notes/ from many branches; listing each one in mkdocs.yml
by hand would make every such branch edit the same lines. The reading path (the lessons, the kernel
pages) stays listed by hand in mkdocs.yml, in reading order.
"""
from pathlib import Path

NOTES_SECTION = "Notes"
NOTES_DIR = "notes"


def notes_pages(docs_dir):
    """docs/notes/*.md as nav paths ("notes/x.md"), index first, the rest by file name."""
    folder = Path(docs_dir) / NOTES_DIR
    pages = sorted(p.name for p in folder.glob("*.md")) if folder.is_dir() else []
    pages.sort(key=lambda name: name != "index.md")  # stable: index.md first, others stay sorted
    return [f"{NOTES_DIR}/{name}" for name in pages]


def on_config(config):
    nav = config.get("nav")
    if not nav:
        return config
    for entry in nav:
        if isinstance(entry, dict) and NOTES_SECTION in entry:
            listed = entry[NOTES_SECTION] or []
            named = {item if isinstance(item, str) else next(iter(item.values())) for item in listed}
            entry[NOTES_SECTION] = listed + [p for p in notes_pages(config["docs_dir"]) if p not in named]
    return config
