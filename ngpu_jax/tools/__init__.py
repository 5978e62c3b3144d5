"""The commands: each module is `python -m ngpu_jax.tools.NAME`, built on the library."""
