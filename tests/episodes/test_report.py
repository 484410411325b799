"""`policylink report DIR` and `policylink audit join` on a recorded run, as a user runs them."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from policylink.client import RobotLayout
from policylink.episodes import Recorder
from tests.demo.conftest import policylink
from tests.support.browser import dump_dom

from .conftest import local_engine, record_episodes, require, sim_arm

# Appended to a copy of the report: plays every video, then writes what the browser saw into
# the title (the report itself runs no script).
PROBE = """<script>
window.addEventListener("load", async () => {
  const videos = [...document.querySelectorAll("video")];
  const seen = await Promise.all(videos.map(v => new Promise(done => {
    v.addEventListener("timeupdate", () => { if (v.currentTime > 0) done(v.currentTime); });
    v.addEventListener("error", () => done(-1));
    v.play().catch(() => done(-2));
  })));
  document.title = "probe " + JSON.stringify({
    played: seen, ready: videos.map(v => v.readyState),
    width: videos.map(v => v.videoWidth),
    plots: [...document.querySelectorAll("svg polyline, svg rect")].length,
  });
});
</script></body>"""


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> Path:
    require("av")
    require("pyarrow")
    root = tmp_path_factory.mktemp("recording")
    robot = sim_arm()
    recorder = Recorder(root, RobotLayout.of(robot), fps=robot.task.fps)
    record_episodes(robot, local_engine(robot), recorder, episodes=1)
    return root


def test_report_embeds_every_video_and_plot(recorded: Path):
    result = policylink("report", str(recorded))
    assert result.returncode == 0, result.stderr
    html = (recorded / "report.html").read_text()
    assert html.count("<video") == 2 and html.count("<svg") == 4
    # Self-contained: everything it shows is inside it.
    assert all(uri.startswith("data:") for uri in re.findall(r'\ssrc="([^"]*)"', html))


def test_report_videos_play_and_plots_render_in_a_headless_browser(recorded: Path, tmp_path):
    assert policylink("report", str(recorded)).returncode == 0
    page = tmp_path / "probe.html"
    page.write_text((recorded / "report.html").read_text().replace("</body>", PROBE))
    dom = dump_dom(
        page, "--autoplay-policy=no-user-gesture-required", "--virtual-time-budget=15000"
    )
    found = re.search(r"<title>probe (.*?)</title>", dom)
    assert found, "the probe never finished"
    probe = json.loads(found.group(1).replace("&quot;", '"'))
    assert all(t > 0 for t in probe["played"]), probe
    assert probe["width"] == [128, 96] and all(r >= 2 for r in probe["ready"])
    assert probe["plots"] > 10
