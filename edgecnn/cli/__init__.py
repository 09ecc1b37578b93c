"""The command line: a thin Typer app; each command in its own file imports heavy things lazily."""
