"""One module per command; kvcalc/cli.py wires them into the typer app."""
