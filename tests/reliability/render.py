#!/usr/bin/env python3
"""Renders target/reliability/*.json (written by tests/tests/reliability_*.rs)
into the table between the markers in docs/reliability.md.

    cargo test --release -p modproxy-tests --test reliability_restart \
        --test reliability_backends --test reliability_clients
    python3 tests/reliability/render.py
"""
import json, pathlib, subprocess, sys

root = pathlib.Path(__file__).resolve().parents[2]
figures = root / "target" / "reliability"
doc = root / "docs" / "reliability.md"
BEGIN, END = "<!-- figures:begin -->", "<!-- figures:end -->"

rows = [json.loads(p.read_text()) for p in sorted(figures.glob("*.json"))]
if not rows:
    sys.exit(f"no figures in {figures}: run the reliability tests first")
commit = subprocess.run(["git", "-C", str(root), "rev-parse", "--short", "HEAD"],
                        capture_output=True, text=True).stdout.strip()
cell = lambda s: str(s).replace("|", "\\|").replace("\n", " ")
lines = [
    f"Figures from one run ({rows[0]['profile']} build, on top of commit {commit}).",
    "",
    "| # | scenario | test | tried | what happened | sent | failed | lost | recovery ms |",
    "|---|---|---|---|---|---|---|---|---|",
]
for r in rows:
    rec = "" if r["recovery_ms"] is None else r["recovery_ms"]
    lines.append("| " + " | ".join(cell(x) for x in [
        r["id"], r["scenario"], "`" + r["test"] + "`", r["tried"], r["outcome"],
        r["sent"], r["failed"], r["lost"], rec]) + " |")
text = doc.read_text()
start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
doc.write_text(text[:start] + "\n" + "\n".join(lines) + "\n" + text[end:])
print(f"{len(rows)} rows into {doc}")
