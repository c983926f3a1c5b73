"""Stylizing images with a trained or published model: the Stylizer, tiles for large
images, colour preservation."""

# The published models ``Stylizer.from_pretrained`` loads by name. Here, not in
# stylizer.py, so that the command line checks --pretrained without importing JAX.
PRETRAINED = ("magenta", "magenta-lite")
