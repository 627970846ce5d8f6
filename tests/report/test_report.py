"""``holmes report`` from the committed artefacts, opened in headless Chromium like a reader opens it."""

from __future__ import annotations

import re
import shutil
import subprocess

from holmes.cli import main
from holmes.report import FIGURES


def _chromium() -> str:
    exe = shutil.which("chromium-headless-shell") or shutil.which("chromium")
    assert exe, "headless Chromium missing: scripts/test.sh installs Debian's chromium-headless-shell"
    return exe


def test_report_opens_in_chromium_with_every_figure_and_no_errors(tmp_path, capsys):
    out = tmp_path / "report"
    assert main(["report", "--out-dir", str(out)]) == 0
    assert "index.html" in capsys.readouterr().out
    index = out / "index.html"
    md = (out / "report.md").read_text()
    for fig in FIGURES:
        assert (out / f"{fig}.png").stat().st_size > 10_000, fig
        assert f"]({fig}.png)" in md, fig
    assert md.count("Source: ") >= 6 and "Missing: " in md  # every section names its source; gaps are said
    assert "supernet subnets (one set of weights) are members" in md and "Missing: supernet" not in md
    flags = ["--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--enable-logging=stderr", "--v=0"]
    dom = subprocess.run([_chromium(), *flags, "--dump-dom", index.as_uri()], capture_output=True, text=True, timeout=120)
    body = re.search(r"<body([^>]*)>", dom.stdout).group(1)
    assert 'data-loaded="yes"' in body and 'data-errors="0"' in body, body
    shown = re.search(r'data-figures="([^"]*)"', body).group(1).split(",")
    assert sorted(shown) == sorted(FIGURES)  # every figure decoded and rendered (naturalWidth > 0)
    assert "CONSOLE" not in dom.stderr  # nothing written to the page's console
    shot = tmp_path / "report.png"
    subprocess.run([_chromium(), *flags, f"--screenshot={shot}", "--window-size=1200,4200", index.as_uri()],
                   capture_output=True, timeout=120)
    assert shot.stat().st_size > 100_000
    shutil.copy(shot, out / "screenshot.png")
