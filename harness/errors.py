"""Errors the CLI turns into exit codes."""


class SpecError(Exception):
    """Bad user input: the message names the field path, the value given and what is allowed.

    The CLI prints it and exits 2 before Ray starts or any MLflow run exists.
    """


class FieldPathError(ValueError):
    """A check across sections that blames one field: the spec's error formatting reports it
    at `path` rather than where pydantic found it."""

    def __init__(self, path: str, given: object, message: str) -> None:
        self.path, self.given = path, given
        super().__init__(message)
