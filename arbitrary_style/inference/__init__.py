"""Stylizing images with a trained or published model: the Stylizer, tiles for large
images, colour preservation."""

# The published models ``Stylizer.from_pretrained`` loads by name
# (``weights.PRETRAINED_LOADERS``; tests/test_stylizer.py checks the two agree).
# Here, so that the command line checks --pretrained without importing JAX.
PRETRAINED = ("magenta", "magenta-lite")
