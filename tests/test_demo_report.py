"""`rimkit demo` end to end, and its report.html opened in headless Chromium."""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
from PIL import Image

from rimkit.cli import main
from rimkit.demo import SETTINGS, run_demo

PROBE = """<script>
window.addEventListener('load', () => {
  const images = [...document.images].map(i => i.complete && i.naturalWidth > 0);
  const probe = document.createElement('pre');
  probe.id = 'probe';
  probe.textContent = JSON.stringify({images, tables: document.querySelectorAll('table').length,
    rows: document.querySelectorAll('tr').length});
  document.body.appendChild(probe);
});
</script>"""


def open_in_chromium(report, tmp_path) -> dict:
    """Load a copy of the report with a probe script in headless Chromium; what it saw."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("Chromium is not installed (Debian package chromium; .ci/run installs it)")
    probe = tmp_path / "probe.html"
    probe.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        f"--user-data-dir={tmp_path / 'profile'}",
        "--virtual-time-budget=5000",
        "--dump-dom",
    ]
    done = subprocess.run(
        [browser, *flags, probe.as_uri()], capture_output=True, text=True, timeout=120
    )
    found = re.search(r'<pre id="probe">(.*?)</pre>', done.stdout, re.S)
    assert found, f"no probe output; chromium said: {done.stderr[-500:]}"
    return json.loads(found.group(1).replace("&quot;", '"'))


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo") / "out"
    result = run_demo(out, "example:camera", crop=48, progress=False)
    return out, result


def test_demo_writes_every_output(demo_run):
    out, _ = demo_run
    for name in ("results.md", "results.json", "figure.png", "convergence.csv", "report.html"):
        assert (out / name).is_file(), name
    rows = json.loads((out / "results.json").read_text())["rows"]
    assert {r["setting"] for r in rows} == {s.name for s in SETTINGS}
    measured = [r for r in rows if r["psnr"] != "—"]
    assert measured and all(5 < r["psnr"] < 80 for r in measured)
    mri = {r["method"]: r["psnr"] for r in measured if r["setting"] == "mri R=4"}
    assert {"zero-filled", "tv"} <= set(mri)  # magnitudes of complex estimates, scored
    coils = {r["method"]: r["psnr"] for r in measured if r["setting"] == "mri 8 coils R=8"}
    assert coils["RIM mri"] > coils["zero-filled"]  # multi-coil k-space, the same model
    deblur = {r["method"]: r["psnr"] for r in measured if r["setting"] == "deblur"}
    assert {"tv", "fista-wavelet"} <= set(deblur)
    assert Image.open(out / "figure.png").size[1] > 100
    assert "| setting | method |" in (out / "results.md").read_text()


def test_demo_report_loads_every_image_in_a_browser(demo_run, tmp_path):
    out, result = demo_run
    seen = open_in_chromium(out / "report.html", tmp_path)
    assert seen["images"] and all(seen["images"])
    assert seen["tables"] >= 1 and seen["rows"] == len(result["rows"]) + 1


def test_demo_keeps_an_existing_folder_without_force(tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    status = main(["demo", "--out", str(out), "-q"])
    assert status == 2 and "--force" in capsys.readouterr().err
    assert (out / "keep.txt").read_text() == "mine"
