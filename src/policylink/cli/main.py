"""Entry point of the `policylink` command; each subcommand lives in its own module."""

import typer

from policylink import __version__
from policylink.cli import capacity, certs, demo, router, run, serve, status

app = typer.Typer(no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
app.command("demo")(demo.demo)
app.command("serve")(serve.serve)
app.command("run")(run.run)
app.command("status")(status.status)
app.command("router")(router.router)
app.command("capacity")(capacity.capacity)
app.command("certs")(certs.certs)


@app.command()
def version() -> None:
    """Print the installed version."""
    typer.echo(__version__)


def main() -> None:
    app()
