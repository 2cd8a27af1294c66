"""Contracts every package shares: the strict base of typed configs and results, and the base of errors meant for the user. A leaf: it imports nothing of the project."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown fields are errors, and assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class UserError(Exception):
    """A problem with the user's input (a flag, a config or samples file, a model that cannot be served): the entry points print its message and exit 2, without a traceback."""
