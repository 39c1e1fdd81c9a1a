"""HTML tables and verdicts: milestone targets, queue stats, comparisons."""

from __future__ import annotations

import html
from collections.abc import Iterable
from typing import Any

from .. import report
from ..summary import as_summary
from .charts import run_title
from .records import Summary, queue_stats

TABLE_CSS = ("<style>.ttg-table{border-collapse:collapse;margin:4px 0 12px}"
             ".ttg-table th,.ttg-table td{border:1px solid #ccc;padding:3px 10px;"
             "text-align:left}.ttg-table th{background:#f3f3f3}"
             ".ttg-table td.obs{font-weight:bold}</style>")


def html_table(header: list[str], rows: Iterable[Iterable[Any]], caption: str = "",
               bold_last: bool = False) -> str:
    head = "".join(f"<th>{html.escape(str(h))}</th>" for h in header)
    body = []
    for row in rows:
        cells = list(row)
        tds = []
        for i, cell in enumerate(cells):
            cls = ' class="obs"' if bold_last and i == len(cells) - 1 else ""
            tds.append(f"<td{cls}>{html.escape(str(cell))}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    cap = f"<caption style='text-align:left'><b>{html.escape(caption)}</b></caption>" \
        if caption else ""
    return (f"{TABLE_CSS}<table class='ttg-table'>{cap}<thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def milestone_table(summary: Summary, caption: str | None = None) -> str:
    return html_table(["Metric", "Target", "Observed"], report.milestone_rows(summary),
                      caption if caption is not None else run_title(summary), bold_last=True)


def queue_stats_table(summary: Summary, caption: str = "Queue stats after completion") -> str:
    stats = queue_stats(summary)
    if not stats:
        return "<p><i>No queue stats were recorded (the broker was unreachable at the end).</i></p>"
    return html_table(["name", "messages", "consumers", "messages_ready",
                       "messages_unacknowledged"], report.queue_stats_rows(stats), caption)


def verdict_html(summary: Summary) -> str:
    s = as_summary(summary)
    if s.ok:
        return (f"<p style='font-size:1.2em;color:#1a7f37'><b>VERIFIED</b>: "
                f"{html.escape(report.verified_claim(s))} "
                f"(run {html.escape(s.run_id)}, data loss ZERO).</p>")
    problems = "".join(f"<li>{html.escape(p)}</li>" for p in (s.problems or [])[:10])
    return (f"<p style='font-size:1.2em;color:#cf222e'><b>FAILED</b>: run "
            f"{html.escape(str(s.run_id))}</p><ul>{problems}</ul>")


def comparison_table(summaries: list[Summary]) -> str:
    header, body = report.comparison_rows(summaries)
    return html_table(header, body, "Backend Comparison Summary (medians over repeats)")


def observations_html(summaries: list[Summary]) -> str:
    items = "".join(f"<li>{html.escape(line)}</li>"
                    for line in report.key_observations(summaries))
    return f"<h4>Key Observations</h4><ul>{items}</ul>"
