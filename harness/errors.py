"""Errors the CLI turns into exit codes."""


class SpecError(Exception):
    """Bad user input: the message names the field path, the value given and what is allowed.

    The CLI prints it and exits 2 before Ray starts or any MLflow run exists.
    """
