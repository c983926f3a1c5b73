"""Stylizing images with a trained or published model: the Stylizer, tiles for large
images, colour preservation."""
