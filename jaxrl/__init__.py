"""jaxrl: functional deep RL in JAX."""

__version__ = "0.1.0"
