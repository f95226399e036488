"""Rich terminal output for the verify/rollout reports: the same :class:`View` the HTML page shows."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from lameduck.verify.view import Verdict, View

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
