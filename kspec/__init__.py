"""kspec: Keras functional models declared as YAML specs."""

__version__ = "0.1.0"


def from_model(model: object, name: str | None = None) -> str:
    """The spec text of a Keras functional or Sequential model (see `kspec import`)."""
    from .importer import from_model as spec_of

    return spec_of(model, name)
