"""MkDocs hook: the benchmark page's tables come from the suite's JSON results file.

A line `<!-- benchmark-results: PATH -->` in a page is replaced by the run that PATH (relative
to the repository) holds: machine, command, the table and the notes, as `benchmarks/run.py`
wrote them. A missing or unreadable file is an error, so `mkdocs build --strict` cannot publish
a page without its figures.
"""

from __future__ import annotations

import json
import pathlib
import re

ROOT = pathlib.Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!-- benchmark-results: (\S+) -->")


def render(report: dict) -> str:
    """The markdown for one results file: the run's header, its table, memory, scaling, notes."""
    info = report["machine"]
    header, rows = report["table"]["header"], report["table"]["rows"]
    table = "\n".join(["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] +
                      ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |"
                       for row in rows])
    parts = [f"Machine: {info['cpu']}; Python {info['python']}, numpy {info['numpy']}, BLAS "
             f"threads {info['blas_threads']}, load average {info['load']} at start; "
             f"{report['clock']} clock. Date: {info['date']}.",
             "", f"Command: `{report['command']}`", "",
             "\n".join(f"- **{key}** {w['title']}: {w['what']} ({w['rounds']} rounds)"
                       for key, w in report["workloads"].items()), "", table]
    parts += [x for m in report.get("memory") or [] for x in ("", m)]
    if report.get("scaling"):
        parts += ["", report["scaling"]]
    video = report.get("video") or {}
    if "fps_median" in video:
        parts += ["", f"**V** {video['title']}: **{video['fps_median']:.1f} frames per second** "
                      f"(median; best {video['fps_best']:.1f}) at {video['frame_size'][0]}×"
                      f"{video['frame_size'][1]}, detection included, one thread: "
                      f"{video['ms_per_frame']:.1f} ms a frame, {video['ms_detect']:.1f} of it "
                      f"detecting; {video['frames']} frames × {video['rounds']} rounds, "
                      f"{video['clock']} clock."]
    elif video:
        parts += ["", f"**V** (face video): {video.get('status', 'not measured')}"]
    if report.get("notes"):
        parts += [""] + [f"- {note}" for note in report["notes"]]
    return "\n".join(parts) + "\n"


def on_page_markdown(markdown: str, page, config, files) -> str:
    def replace(match: re.Match) -> str:
        path = ROOT / match.group(1)
        try:
            report = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as error:
            raise ValueError(f"{page.file.src_path}: cannot read the benchmark results "
                             f"{path}: {error}") from error
        return render(report)
    return MARKER.sub(replace, markdown)
