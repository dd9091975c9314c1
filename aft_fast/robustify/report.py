"""report.json → report.md (figures as files in figures/) and a self-contained report.html
(figures embedded as base64 PNG). Every number either shows comes from report.json through
`pct`/`rows`, so the three never disagree."""
from __future__ import annotations

import base64
import html
from pathlib import Path

from aft_fast.io import atomic_write, write_json, write_text
from aft_fast.policy import is_autoattack_reference
from aft_fast.robustify.figures import FIGURES


def pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f}%"


def pgd_label(protocol: dict) -> str:
    return f"PGD-{protocol['pgd_steps']} × {protocol['pgd_restarts']} restarts"


def aa_label(protocol: dict) -> str:
    reference = is_autoattack_reference(steps=protocol["aa_steps"], queries=protocol["aa_queries"])
    return "AutoAttack (" + ("reference settings" if reference else "REDUCED settings") + ")"


def summary_rows(report: dict) -> list[list[str]]:
    """The before/after table: measure (images), before, after."""
    before, after = report["test"]["before"], report["test"]["after"]
    return [["clean", f"{after['clean_n']:,}", pct(before["clean_acc"]), pct(after["clean_acc"])],
            [pgd_label(after["protocol"]), f"{after['n']:,}", pct(before["pgd_acc"]),
             pct(after["pgd_acc"])],
            [aa_label(after["protocol"]), f"{after['autoattack_n']:,}",
             pct(before["autoattack_acc"]), pct(after["autoattack_acc"])]]


def probe_rows(report: dict) -> list[list[str]]:
    c, round1 = report["choices"], report["held_out_before"].get("steps", "?")
    return [[p["name"] + (" **chosen**" if p["name"] == c["chosen"] else "")
             + (" (collapsed)" if p["collapsed"] else ""),
             f"{p['batches']}", pct(p["clean"]), pct(p["robust"]),
             f"PGD-{p.get('steps') or round1}", f"{p['seconds']:.0f}s"]
            for p in c["probes"]]


def choice_lines(report: dict) -> list[str]:
    c, held = report["choices"], report["held_out_before"]
    return [f"model as given, held-out ({held['n']} val images, {held['attack']}): clean "
            f"{pct(held['clean'])}, robust {pct(held['robust'])}",
            f"peak LR: {c['lr']:g} ({c['why']})",
            f"BatchNorm: {c['batchnorm']}",
            *([f"BatchNorm statistics re-estimated after the fine-tune on "
               f"{c['reestimated']['images']:,} training images' {c['reestimated']['attack']} "
               f"examples (the model evaluated and exported)"] if c.get("reestimated") else []),
            f"epochs: {c['epochs_why']}; {c['updates']:,} weight updates",
            *[f"**warning**: {w}" for w in c["warnings"]]]


def masking_lines(report: dict) -> list[str]:
    m = report["test"]["after"]["masking"]
    return [f"{name}: {'pass' if v['pass'] else 'FAIL'} ({v['detail']})"
            for name, v in m.items() if name != "all"]


def _md_table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(r) + " |" for r in rows])


SUMMARY_HEAD = ["test accuracy", "images", "before", "after"]
PROBE_HEAD = ["probe", "batches", "held-out clean", "held-out robust", "attack", "time"]


def title(report: dict) -> str:
    return (f"robustify: {report['model']['arch']} on {report['data']['data']}, "
            f"l∞ eps {report['threat']['eps_text']}")


def markdown(report: dict) -> str:
    aa = report["test"]["after"]["protocol"]
    parts = [f"# {title(report)}", "", f"`{report['command']}`", "",
             f"Commit {report['environment']['commit']}, {report['environment']['device']}; "
             f"{report['seconds']['total']:.0f} s in all.", "", "## Before and after", "",
             _md_table(SUMMARY_HEAD, summary_rows(report)), "",
             f"AutoAttack: APGD-CE, APGD-T, FAB-T ({aa['aa_steps']} iterations, "
             f"{aa['aa_targets']} targets), Square ({aa['aa_queries']} queries).", "",
             "![before and after](figures/before_after.png)", "", "## Choices", "",
             *[f"- {line}" for line in choice_lines(report)], "",
             _md_table(PROBE_HEAD, probe_rows(report)), "", "![probes](figures/choices.png)", "",
             "## Training", "", f"Run: `{report['training']['run_dir']}`", "",
             "![training](figures/training.png)", "",
             "## Is the robustness real? (gradient-masking checks)", "",
             *[f"- {line}" for line in masking_lines(report)], "",
             "![accuracy against eps](figures/eps_curve.png)", "", "## Exported model", "",
             f"`{report['exports']['dir']}`: {', '.join(report['exports']['files'])} "
             "(MODEL_CARD.md says how to load them).", ""]
    return "\n".join(parts)


def _html_table(head, rows) -> str:
    cells = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c.replace('**', ''))}</td>" for c in r)
                   + "</tr>" for r in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _img(png: bytes, alt: str) -> str:
    return f'<img alt="{alt}" src="data:image/png;base64,{base64.b64encode(png).decode()}">'


def page(report: dict, pngs: dict[str, bytes]) -> str:
    def items(lines):
        return "<ul>" + "".join(f"<li>{html.escape(x.replace('**', ''))}</li>" for x in lines) \
            + "</ul>"

    return "\n".join([
        "<!doctype html><html><head><meta charset='utf-8'>",
        f"<title>{html.escape(title(report))}</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}td,th{padding:2px 8px;"
        "border-bottom:1px solid #ccc;text-align:right}img{max-width:100%}</style></head><body>",
        f"<h1>{html.escape(title(report))}</h1><p><code>{html.escape(report['command'])}</code></p>",
        "<h2>Before and after</h2>", _html_table(SUMMARY_HEAD, summary_rows(report)),
        _img(pngs["before_after"], "before and after"),
        "<h2>Choices</h2>", items(choice_lines(report)),
        _html_table(PROBE_HEAD, probe_rows(report)), _img(pngs["choices"], "probes"),
        "<h2>Training</h2>", _img(pngs["training"], "training"),
        "<h2>Gradient-masking checks</h2>", items(masking_lines(report)),
        _img(pngs["eps_curve"], "accuracy against eps"),
        f"<p>Commit {html.escape(report['environment']['commit'])}, "
        f"{html.escape(report['environment']['device'])}.</p></body></html>"])


def write(report: dict, out: Path) -> dict[str, str]:
    """report.json, figures/*.png, report.md, report.html in `out`; their paths."""
    write_json(report, out / "report.json")
    pngs = {name: draw(report) for name, draw in FIGURES.items()}
    for name, png in pngs.items():
        atomic_write(out / "figures" / f"{name}.png", lambda f, b=png: f.write(b))
    write_text(markdown(report), out / "report.md")
    write_text(page(report, pngs), out / "report.html")
    return {k: str(out / k) for k in ("report.json", "report.md", "report.html")}
