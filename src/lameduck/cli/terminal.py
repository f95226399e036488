"""Rich terminal output for the verify/rollout reports: the same :class:`View` the HTML page shows."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from lameduck.verify.view import Verdict, View

#: The shell's convention for a command ended by Ctrl-C (128 + SIGINT).
INTERRUPTED = 130
STYLE: dict[Verdict, str] = {"PASS": "bold green", "FAIL": "bold red", "N/A": "dim"}


def print_view(console: Console, view: View) -> None:
    for spec in view["tables"]:
        if spec.get("detail"):
            continue
        table = Table(title=spec["title"], title_justify="left", show_lines=True, expand=False)
        for column in spec["columns"]:
            table.add_column(column, overflow="fold")
        verdicts = spec.get("verdicts")
        for index, row in enumerate(spec["rows"]):
            cells = list(row)
            if verdicts is not None:
                verdict = verdicts[index]
                cells = [f"[{STYLE[verdict]}]{c}[/]" if c == verdict else c for c in cells]
            table.add_row(*cells)
        console.print(table)
    verdict = view["verdict"]
    console.print(f"[{STYLE[verdict]}]{verdict}[/] {view['headline']}", highlight=False)


def finish(
    console: Console, view: View, data: dict[str, Any], *, json_path: Path | None, html_path: Path | None
) -> None:
    """The end of a verify or rollout run: the summary on the terminal, then the files that were asked for."""
    console.print()
    print_view(console, view)
    if json_path is not None:
        json_path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    if html_path is not None:
        from lameduck.verify.html import render

        html_path.write_text(render(view), encoding="utf-8")
