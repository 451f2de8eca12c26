"""The floor for start-up: a typer app with one command that does nothing."""

import typer

app = typer.Typer(add_completion=False)


@app.command()
def noop() -> None:
    """Do nothing."""


if __name__ == "__main__":
    app()
