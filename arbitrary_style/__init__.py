"""arbitrary-style: fast arbitrary (Ghiasi et al. 2017) and N-style (Dumoulin et
al. 2017) neural style transfer in JAX and Flax NNX."""

__version__ = "0.1.0"
