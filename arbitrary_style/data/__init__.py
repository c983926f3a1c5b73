"""Style and content data: TFDS sources, image folders, the embedded demo set."""
