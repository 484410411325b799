"""`policylink demo`: one server, a fleet of simulated arms, async against blocking inference.

Everything runs on this machine but nothing is faked: the server is a `policylink serve`
process, each arm is a real robot client over Zenoh, and a WAN is a real network path where the
kernel allows one: the server in a network namespace behind a veth pair (`--bandwidth-mbit` caps
it with `tc`) and an impairment proxy process adding the delay, jitter and loss
(`policylink.demo.links`). Where namespaces are refused, a transport wrapper on the robots'
side delays, jitters and drops messages instead; the output and `results.json` say which.
"""

from __future__ import annotations

import contextlib
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console

from policylink.sim.camera import CameraConfig
from policylink.sim.expert import BACKBONES
from policylink.sim.task import ReachTrackConfig

if TYPE_CHECKING:
    from policylink.demo.fleet import FleetConfig, PhaseRecord

DEFAULT_RUNS_DIR = "runs"


def _image_size(value: str) -> tuple[int, int]:
    height, sep, width = value.lower().partition("x")
    if not sep or not height.isdigit() or not width.isdigit():
        raise typer.BadParameter(f"{value!r}: use HEIGHTxWIDTH, e.g. 480x640")
    return int(height), int(width)


def _run_dir(root: Path) -> Path:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for attempt in range(100):
        path = root / (stamp if attempt == 0 else f"{stamp}-{attempt}")
        try:
            path.mkdir(parents=True)
        except FileExistsError:
            continue
        return path
    raise typer.BadParameter(f"cannot create a fresh run folder under {root}")


def demo(
    *,
    robots: int = typer.Option(4, "--robots", "-n", min=1, max=32, help="Simulated arms."),
    episodes: int = typer.Option(3, "--episodes", "-e", min=1, help="Episodes per arm and phase."),
    policy_size: str = typer.Option(
        "small",
        "--policy-size",
        help=f"Transformer backbone the server runs per chunk: {', '.join(BACKBONES)}.",
    ),
    fps: float = typer.Option(30.0, "--fps", min=5.0, max=200.0, help="Control rate (Hz)."),
    image_size: str = typer.Option("480x640", "--image-size", help="Camera HEIGHTxWIDTH."),
    wrist_camera: bool = typer.Option(False, "--wrist-camera", help="Add a wrist camera."),
    rtt_ms: float = typer.Option(0.0, "--rtt-ms", min=0.0, help="Added round-trip delay."),
    jitter_ms: float = typer.Option(0.0, "--jitter-ms", min=0.0, help="± jitter each way."),
    loss: float = typer.Option(0.0, "--loss", min=0.0, max=0.5, help="Message loss, 0..0.5."),
    link: str = typer.Option(
        "auto",
        "--link",
        help="Where --rtt-ms/--jitter-ms/--loss apply: real (namespace, veth, impairment proxy; "
        "loss is per TCP segment, paid as a retransmission), wrapper (robot side, per message), "
        "auto (real where the kernel allows it).",
    ),
    bandwidth_mbit: float | None = typer.Option(
        None, "--bandwidth-mbit", min=0.01, help="Cap the real link's bandwidth each way (tc)."
    ),
    track_s: float = typer.Option(
        3.0, "--track-s", min=0.1, help="Seconds on target an episode needs to succeed."
    ),
    buffer_s: float = typer.Option(
        0.8, "--buffer-s", min=0.0, help="Async engine: request when less is buffered."
    ),
    compare: bool = typer.Option(
        True, "--compare/--no-compare", help="Repeat the episodes with blocking inference."
    ),
    report: bool = typer.Option(True, "--report/--no-report", help="Write report.html + JSON."),
    runs_dir: Path = typer.Option(Path(DEFAULT_RUNS_DIR), "--runs-dir", help="Run folders root."),
    record: Path | None = typer.Option(
        None, "--record", help="Record every robot's episodes into DIR (videos, ticks)."
    ),
) -> None:
    """Serve the built-in expert to a fleet of simulated arms and compare async with blocking."""
    from policylink.client.links.impairment import NetworkImpairment
    from policylink.demo.fleet import FleetConfig
    from policylink.demo.links import RobotNetwork, real_link_wanted
    from policylink.demo.server_process import (
        MODEL_ID,
        ServerProcess,
        ServerStartError,
        demo_manifest,
    )
    from policylink.net.netpath import NetPathError
    from policylink.net.ports import free_port
    from policylink.net.proxy_process import ProxyStartError

    if policy_size not in BACKBONES:
        raise typer.BadParameter(
            f"{policy_size!r} is not one of {', '.join(BACKBONES)}", param_hint="--policy-size"
        )
    height, width = _image_size(image_size)
    cameras = [CameraConfig("top", height, width)]
    if wrist_camera:
        cameras.append(CameraConfig("wrist", height, width, view="wrist"))
    impairment = NetworkImpairment(rtt_ms, jitter_ms, loss)
    try:
        real, link_note = real_link_wanted(link, impairment.active, bandwidth_mbit)
    except ValueError as exc:
        raise typer.BadParameter(str(exc), param_hint="--link") from None
    console = Console()
    settings: dict[str, Any] = {
        "robots": robots,
        "episodes": episodes,
        "policy_size": policy_size,
        "fps": fps,
        "track_s": track_s,
        "cameras": [f"{c.name} {c.height}x{c.width}" for c in cameras],
        "network": impairment.describe(),
        "link_note": link_note,
        "buffer_s": buffer_s,
    }
    scratch = None if report else tempfile.TemporaryDirectory(prefix="policylink-demo-")
    run_dir = Path(scratch.name) if scratch else _run_dir(runs_dir)
    try:
        with contextlib.ExitStack() as stack:
            port = free_port()
            network = stack.enter_context(
                RobotNetwork(impairment, port, real=real, bandwidth_mbit=bandwidth_mbit)
            )
            settings["network"], settings["link"] = network.describe(), network.kind
            console.print(f"network: {settings['network']} ({settings['link']}{link_note})")
            manifest = demo_manifest(
                port,
                policy_size,
                [{"name": c.name, "height": c.height, "width": c.width} for c in cameras],
                fps,
                robots,
                host=network.server_host,
            )
            fleet_config = FleetConfig(
                endpoint=network.robot_endpoint,
                model_id=MODEL_ID,
                robots=robots,
                episodes=episodes,
                task=ReachTrackConfig(fps=fps, track_s=track_s),
                cameras=tuple(cameras),
                buffer_time_s=buffer_s,
                impairment=network.wrapper,
                network=network.describe(),
                record=record,
            )
            console.print(f"starting the policy server ({policy_size} backbone) ...")
            server = stack.enter_context(ServerProcess(manifest, run_dir, network.server_prefix()))
            console.print(server.startup_line)
            phases = _run_phases(fleet_config, compare, console)
        if network.stats is not None:
            settings["proxy"] = asdict(network.stats)
        _conclude(phases, settings, fleet_config, report=report, run_dir=run_dir, console=console)
    except (NetPathError, ProxyStartError) as exc:
        console.print(f"[red]the real link could not be built: {exc}[/] (try --link wrapper)")
        raise typer.Exit(1) from None
    except ServerStartError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        console.print("interrupted; the robots and the server were stopped")
        raise typer.Exit(130) from None
    finally:
        if scratch is not None:
            scratch.cleanup()


def _run_phases(config: FleetConfig, compare: bool, console: Console) -> list[PhaseRecord]:
    from policylink.demo.fleet import Fleet
    from policylink.demo.terminal import watch

    titles = {
        "async": "async: RemoteEngine, the control loop never waits",
        "sync": "blocking: SyncEngine, the same episodes",
    }
    phases = []
    for engine in ("async", "sync") if compare else ("async",):
        phases.append(watch(Fleet(config, engine), titles[engine], console))
    return phases


def _conclude(
    phases: list[PhaseRecord],
    settings: dict[str, Any],
    config: FleetConfig,
    *,
    report: bool,
    run_dir: Path,
    console: Console,
) -> None:
    from policylink.demo.summary import compare as compare_phases
    from policylink.demo.summary import summarize
    from policylink.demo.terminal import summary_table
    from policylink.report.demo_report import write_report

    summaries = [summarize(phase, config.fps) for phase in phases]
    comparison = compare_phases(phases[0], phases[1]) if len(phases) == 2 else None
    console.print(summary_table(summaries, comparison))
    errors = [error for summary in summaries for error in summary.errors]
    for error in errors:
        console.print(f"[red]{error}[/]")
    if report:
        html_path, json_path = write_report(
            run_dir,
            settings=settings,
            phases=phases,
            summaries=summaries,
            comparison=comparison,
            fps=config.fps,
            recording=config.record,
        )
        console.print(f"report: {html_path}\nfigures: {json_path}\nrun folder: {run_dir}")
    if errors:
        raise typer.Exit(1)
