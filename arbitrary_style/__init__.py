"""arbitrary-style: fast arbitrary (Ghiasi et al. 2017) and N-style (Dumoulin et
al. 2017) neural style transfer in JAX and Flax NNX."""

__version__ = "0.1.0"

__all__ = ["Stylizer"]


def __getattr__(name):
    # Lazy: `import arbitrary_style` stays light (no JAX until the API is used).
    if name == "Stylizer":
        from arbitrary_style.inference.stylizer import Stylizer  # noqa: PLC0415

        return Stylizer
    raise AttributeError(f"module 'arbitrary_style' has no attribute {name!r}")
