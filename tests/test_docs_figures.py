"""Every published figure in docs/ says what it was measured on (issue 14, acceptance 4).

A figure from scripted agents is fixed by their written rules and checks the plumbing; a figure
measured on a learner, a model or a person is a finding; a time or a size is a measurement of the
software. Each section of these docs that holds a table of numbers must say which, in plain words,
with one of the marker phrases in ``MARKERS`` (case-insensitive).

What is checked, per file: the file is split into sections by its headings (``#``, ``##``, ...);
a section runs from its heading to the next heading of the same or a higher level, so it includes
its subsections. Every markdown table outside fenced code blocks whose cells hold a decimal
number (``0.750``, ``12.4``, ``−0.3``, ``47%``; text in inline code spans is not read) must lie in
a section whose text holds a marker (a marker may wrap across lines). The section is the
innermost one enclosing the table: a marker in a subsection counts for its parent's tables, a
marker in the parent's text does not count for a subsection's (each subsection says what its
own figures are).

A table whose decimals are not figures (parameter defaults, reward formulas) is let through by an
HTML comment on the line right above it, ``<!-- not a figure: WHY -->``, with a reason.
Figures in prose and in code blocks are marked in the docs too, but are not checked here.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The files checked: the README and every page of docs/ (a new page joins this list).
FILES = [
    "README.md",
    "docs/adapters.md",
    "docs/benchmarks.md",
    "docs/contributing.md",
    "docs/export.md",
    "docs/judges.md",
    "docs/learners.md",
    "docs/lm.md",
    "docs/metrics.md",
    "docs/multiagent.md",
    "docs/scenarios.md",
    "docs/tui.md",
    "docs/users.md",
]

MARKERS = (
    "scripted: by construction",
    "measured on a learner",
    "measured on a model",
    "measured on a person",
    "speed measurement",
    "memory measurement",
)

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")
SEPARATOR = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")
INLINE_CODE = re.compile(r"`+[^`]*`+")
# a decimal (optionally signed, ASCII or Unicode minus) or a percentage; not a piece of a
# dotted version like 3.11.7
DECIMAL = re.compile(r"(?<![\d.])[-−+]?\d+\.\d+(?!\.?\d)|(?<![\d.])\d+(?:\.\d+)?\s?%")
NOT_A_FIGURE = re.compile(r"^\s*<!--\s*not a figure:\s*(\S.*?)\s*-->\s*$", re.IGNORECASE)


@dataclass
class Section:
    level: int  # 0 for the text above the first heading
    heading: str
    start: int  # line index of the heading
    end: int  # line index past the section's last line


@dataclass
class Table:
    start: int  # line index of the header row
    end: int
    first_line: str
    exempt: bool


def sections(lines: list[str], code: set[int]) -> list[Section]:
    heads = []
    for i, line in enumerate(lines):
        m = HEADING.match(line)
        if m and i not in code:
            heads.append((i, len(m.group(1)), m.group(2)))
    out = [Section(0, "(top of file)", 0, heads[0][0] if heads else len(lines))]
    for k, (i, level, text) in enumerate(heads):
        end = next((j for j, lv, _ in heads[k + 1 :] if lv <= level), len(lines))
        out.append(Section(level, text, i, end))
    return out


def code_lines(lines: list[str]) -> set[int]:
    inside, fence, code = False, "", set()
    for i, line in enumerate(lines):
        m = FENCE.match(line)
        if m and (not inside or m.group(1) == fence):
            code.add(i)
            inside, fence = not inside, m.group(1)
        elif inside:
            code.add(i)
    return code


def tables(lines: list[str], code: set[int]) -> list[Table]:
    out, i = [], 0
    while i < len(lines) - 1:
        if i not in code and "|" in lines[i] and SEPARATOR.match(lines[i + 1]) and "|" in lines[i + 1]:
            j = i + 2
            while j < len(lines) and j not in code and lines[j].strip().startswith("|"):
                j += 1
            above = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            out.append(Table(i, j, lines[i].strip(), bool(NOT_A_FIGURE.match(above))))
            i = j
        else:
            i += 1
    return out


def has_figures(lines: list[str], table: Table) -> bool:
    rows = [lines[table.start]] + lines[table.start + 2 : table.end]
    return any(DECIMAL.search(INLINE_CODE.sub("", row)) for row in rows)


def unmarked(text: str, name: str = "<text>") -> list[str]:
    """One line per table of figures whose section has no marker: file, section, first line."""
    lines = text.splitlines()
    code = code_lines(lines)
    secs = sections(lines, code)
    problems = []
    for table in tables(lines, code):
        if table.exempt or not has_figures(lines, table):
            continue
        sec = max((s for s in secs if s.start <= table.start < s.end), key=lambda s: (s.start, s.level))
        body = " ".join(" ".join(lines[sec.start : sec.end]).split()).lower()  # a marker may wrap
        if not any(marker in body for marker in MARKERS):
            problems.append(f"{name}: section {sec.heading!r}: table {table.first_line!r} (line {table.start + 1})")
    return problems


@pytest.mark.parametrize("path", FILES)
def test_every_table_of_figures_says_what_it_was_measured_on(path):
    problems = unmarked((ROOT / path).read_text(encoding="utf-8"), path)
    assert not problems, f"tables of figures in sections with none of the markers {', '.join(repr(m) for m in MARKERS)}:\n" + "\n".join(problems)


# The checker itself, on made-up files.

DOC = """# Title

Intro.

## Rates

| actor | rate |
|---|---:|
| a | 0.750 |

### Deeper

Plain text.

## Marked

Scripted: by construction (the sycophant adopts every suggestion).

| actor | rate |
|---|---|
| b | −0.3 |

### Inside marked

| n | share |
|---|---|
| 1 | 47% |

## Code and settings

```
| x | y |
|---|---|
| 1 | 0.5 |
```

| field | default |
|---|---|
| `tau` | `0.1` |
| version | 3.11.7 |

<!-- not a figure: parameter defaults -->
| field | default |
|---|---|
| flip | 0.25 |

## Integers only

| k | n |
|---|---|
| 1 | 200 |
"""


def test_an_unmarked_table_is_named_with_file_section_and_first_line():
    assert unmarked(DOC, "x.md") == [
        "x.md: section 'Rates': table '| actor | rate |' (line 7)",
        "x.md: section 'Inside marked': table '| n | share |' (line 25)",
    ]


def test_removing_a_marker_fails_the_table_it_covered():
    problems = unmarked(DOC.replace("Scripted: by construction", "Scripted"), "x.md")
    assert [p.split(": table")[0] for p in problems] == [
        "x.md: section 'Rates'",
        "x.md: section 'Marked'",
        "x.md: section 'Inside marked'",
    ]


def test_markers_are_case_insensitive_and_a_subsection_marker_counts_for_its_parent():
    text = DOC.replace("Plain text.", "measured ON A LEARNER (ArCHer, 3 seeds).")
    text = text.replace("### Inside marked\n", "### Inside marked\n\nSpeed\nmeasurement: one run.\n")
    assert unmarked(text) == []


def test_an_exemption_needs_a_reason():
    base = len(unmarked(DOC))
    assert len(unmarked(DOC.replace("not a figure: parameter defaults", "not a figure:"))) == base + 1


@pytest.mark.parametrize(
    ("cell", "found"),
    [
        ("0.750", True),
        ("12.4 s", True),
        ("−13.60", True),
        ("47%", True),
        ("5 %", True),
        ("0.75.", True),
        ("x1.06", True),
        ("200", False),
        ("3.11.7", False),
        ("`0.5`", False),
        ("1e-3", False),
        ("+1", False),
    ],
)
def test_what_counts_as_a_decimal(cell, found):
    assert bool(DECIMAL.search(INLINE_CODE.sub("", cell))) is found


def test_every_page_of_the_docs_is_checked():
    pages = {"README.md"} | {f"docs/{p.name}" for p in (ROOT / "docs").glob("*.md")}
    assert pages <= set(FILES), f"add {sorted(pages - set(FILES))} to FILES"
