"""Evaluation: observed vs unobserved styles through the training losses, and the
demo's content and style scores."""
