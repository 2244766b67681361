"""kspec: Keras functional models declared as YAML specs."""

__version__ = "0.1.0"
