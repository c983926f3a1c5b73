"""Helpers of the training loop (``arbitrary_style.trainer``): devices and hosts, logging."""
