"""Sections of docs/benchmarks.md owned by other bench scripts survive each other's runs."""

from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "bench"))

from harness.doc_sections import carry_sections, put_section  # noqa: E402


def test_a_section_is_appended_then_replaced_in_place(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Report\n\nbody\n")
    put_section(doc, "full-text", "## Full text\n\nfirst")
    put_section(doc, "memory", "## Memory\n\nm1")
    put_section(doc, "full-text", "## Full text\n\nsecond\n")
    text = doc.read_text()
    assert text.startswith("# Report\n\nbody\n\n<!-- section: full-text -->\n## Full text\n\nsecond\n")
    assert "first" not in text and text.count("<!-- section: full-text -->") == 1
    assert text.index("full-text") < text.index("<!-- section: memory -->")


def test_a_full_report_keeps_the_sections_of_the_old_one(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    doc.write_text("# Old report\n")
    put_section(doc, "full-text", "## Full text\n\nfigures")
    new = carry_sections(doc.read_text(), "# New report\n\nnew figures\n")
    assert new.startswith("# New report\n\nnew figures\n\n<!-- section: full-text -->\n")
    assert "# Old report" not in new and new.endswith("<!-- end section: full-text -->\n")
    assert carry_sections("# no sections\n", "# New\n") == "# New\n"
