"""`policylink capacity`: how many robots one device carries, measured before serving.

Builds the manifest's policy on its device, times forwards at batch sizes 1, 2, 4, … up to
`max_batch_size`, and prints per batch size the forward time, the time per request and the
robots the device carries at a request rate — so `max_sessions` comes from a measurement.
"""

from __future__ import annotations

import json

import typer

from policylink.cli.serve import load_manifest


def batch_sizes(limit: int) -> list[int]:
    """Powers of two up to `limit`, and `limit` itself."""
    sizes, size = [], 1
    while size < limit:
        sizes.append(size)
        size *= 2
    return [*sizes, limit]


def capacity(
    *,
    manifest: str | None = typer.Option(None, "--manifest", "-m", help="YAML manifest file."),
    device: str | None = typer.Option(None, "--device", help="cpu | cuda[:N] | mps"),
    dtype: str | None = typer.Option(None, "--dtype", help="float32 | float16 | bfloat16"),
    max_batch_size: int | None = typer.Option(None, "--max-batch-size"),
    request_hz: float | None = typer.Option(
        None, "--request-hz", help="Chunk requests per robot per second (default: the manifest's)"
    ),
    repeats: int = typer.Option(10, "--repeats", min=2, help="Forwards timed per batch size."),
    overrides: list[str] | None = typer.Option(
        None, "--set", help="Any manifest field as dotted.path=YAML value"
    ),
    as_json: bool = typer.Option(False, "--json", help="Print the table as JSON."),
) -> None:
    """Sweep batch sizes on the configured device and print the capacity table."""
    values = {"device": device, "dtype": dtype, "max_batch_size": max_batch_size}
    loaded = load_manifest(manifest, values, overrides)
    from policylink.policy.registry import build_policy
    from policylink.server.forward_profile import capacity as robots_at
    from policylink.server.inference_worker import warm_up

    if loaded.torch_threads is not None:
        import torch

        torch.set_num_threads(loaded.torch_threads)
    policy = build_policy(loaded.policy.to_config(), loaded.device, loaded.dtype)
    limit = min(loaded.max_batch_size, policy.spec.max_batch_size)
    rate = request_hz or loaded.planning_request_hz
    table: dict[int, float] = {}
    for size in batch_sizes(limit):
        table.update(warm_up(policy, repeats, [size]))
        if not as_json:
            typer.echo(f"batch {size:>3}: {table[size]:8.2f} ms", err=True)
    rows = [
        {
            "batch_size": size,
            "forward_ms": round(ms, 3),
            "ms_per_request": round(ms / size, 3),
            "requests_per_s": round(size / ms * 1e3, 1),
            "robots": robots_at({size: ms}, rate),
        }
        for size, ms in table.items()
    ]
    best = robots_at(table, rate)
    if as_json:
        typer.echo(json.dumps({"request_hz": rate, "robots": best, "table": rows}, indent=2))
        return
    family = policy.spec.family
    typer.echo(f"{family} on {loaded.device} ({loaded.dtype}), {rate:g} requests/s per robot")
    typer.echo("batch  forward ms  ms/request  requests/s  robots")
    for row in rows:
        typer.echo(
            f"{row['batch_size']:>5}  {row['forward_ms']:>10.2f}  {row['ms_per_request']:>10.2f}"
            f"  {row['requests_per_s']:>10.1f}  {row['robots']:>6}"
        )
    typer.echo(
        f"this device carries about {best} robots (80% of its best throughput); "
        f"set max_sessions: {best} and max_batch_size: {max(table, key=lambda s: s / table[s])}"
    )
