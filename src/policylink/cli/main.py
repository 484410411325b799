"""Entry point of the `policylink` command; each subcommand lives in its own module."""

import typer

from policylink import __version__
from policylink.cli import (
    audit,
    capacity,
    certs,
    demo,
    export,
    replay,
    report,
    rollout,
    router,
    run,
    serve,
    status,
)
from policylink.cli import eval as evaluate

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)
app.command("run")(run.run)
app.command("status")(status.status)
app.command("router")(router.router)
app.command("capacity")(capacity.capacity)
app.command("certs")(certs.certs)
app.command("replay")(replay.replay)
app.command("eval")(evaluate.eval_)
app.command("report")(report.report)
app.command(
    "rollout",
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)(rollout.rollout)
app.add_typer(audit.audit, name="audit")
app.add_typer(export.export, name="export")


@app.command()
def version() -> None:
    """Print the installed version."""
    typer.echo(__version__)


def main() -> None:
    app()
