"""The commands README.md shows, read from its code blocks, so that CI and the tests run what a reader sees.

    python3 .ci/readme_commands.py quickstart   # the quick-start commands, one a line (what .ci/run runs)
    python3 .ci/readme_commands.py edgecnn      # every `edgecnn ...` command line in a code block

Code blocks are Markdown's: lines indented by 4 spaces or more after a blank line (or inside a list item,
indented past it), and ``` / ~~~ fences. A command line may start with a `$ ` prompt and end with a
`# comment`; both are stripped. Standard library only: CI runs this before any virtual environment exists.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"
QUICKSTART = "## Quick start"
VENV = "python3 -m venv .venv && . .venv/bin/activate && "  # how every quick-start command begins


def code_blocks(text: str) -> list[tuple[str, list[str]]]:
    """``(section heading, lines)`` of every code block, lines with their indentation removed."""
    blocks: list[tuple[str, list[str]]] = []
    section, fence, current, indent = "", None, None, 0
    prev_blank, list_indent = True, 0
    for line in text.splitlines():
        stripped = line.strip()
        if fence is not None:
            if stripped.startswith(fence):
                blocks.append((section, current))
                fence, current = None, None
            else:
                current.append(line)
            continue
        lead = len(line) - len(line.lstrip(" "))
        if current is not None:
            if stripped == "" or lead >= indent:
                current.append(line[indent:] if stripped else "")
                continue
            blocks.append((section, current))
            current = None
        if stripped.startswith(("```", "~~~")):
            fence, current = stripped[:3], []
            continue
        if stripped and lead >= list_indent + 4 and prev_blank:
            current, indent = [line[list_indent + 4:]], list_indent + 4
            continue
        if line.startswith("#"):
            section = stripped
        if stripped:
            m = re.match(r"( *)([-*+]|\d+\.) ", line)
            if m:
                list_indent = len(m.group(0))
            elif lead < list_indent:
                list_indent = 0
        prev_blank = stripped == ""
    if current is not None:
        blocks.append((section, current))
    return [(s, [x.rstrip() for x in b]) for s, b in blocks]


def command_of(line: str) -> str:
    """A code line as a shell command: no `$ ` prompt, no trailing `# comment`, single spaces."""
    line = line.strip()
    if line.startswith("$ "):
        line = line[2:]
    line = re.split(r"\s+#\s", line, maxsplit=1)[0]
    return " ".join(line.split())


def quickstart(text: str) -> list[str]:
    """The quick-start commands: the code lines of the Quick start section that make a fresh virtual
    environment. There must be exactly two (the demo, then the test suite)."""
    found = [command_of(line) for section, lines in code_blocks(text) if section == QUICKSTART
             for line in lines if command_of(line).startswith(VENV)]
    if len(found) != 2:
        raise SystemExit(f"README.md: expected 2 quick-start commands (lines starting {VENV!r} under "
                         f"{QUICKSTART!r}), found {len(found)}: {found}")
    if not found[0].endswith("edgecnn demo") or "pytest" not in found[1]:
        raise SystemExit(f"README.md: the quick-start commands should be the demo, then the tests: {found}")
    return found


def edgecnn_commands(text: str) -> list[str]:
    """Every command line in a code block that runs `edgecnn` (directly, or at the end of a `&&` chain),
    in README order, without repeats."""
    out: list[str] = []
    for _, lines in code_blocks(text):
        for line in lines:
            if not line.strip():
                continue
            cmd = command_of(line)
            if not line.strip().startswith("$ ") and not cmd.startswith("edgecnn ") and not (
                    cmd.startswith(VENV) and " edgecnn " in cmd):
                continue  # output text, or a command of another program
            if (cmd.startswith("edgecnn ") or " edgecnn " in cmd) and cmd not in out:
                out.append(cmd)
    return out


def main(argv: list[str]) -> int:
    what = argv[1] if len(argv) > 1 else "quickstart"
    text = README.read_text(encoding="utf-8")
    if what not in ("quickstart", "edgecnn"):
        print(f"usage: {argv[0]} quickstart|edgecnn", file=sys.stderr)
        return 2
    print("\n".join(quickstart(text) if what == "quickstart" else edgecnn_commands(text)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
