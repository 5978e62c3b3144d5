"""ngpu-jax: the Neural GPU (Kaiser & Sutskever, 2015) in plain JAX."""

__version__ = "0.1.0"
