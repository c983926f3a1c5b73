"""Training: the train step, the loop, checkpoints, devices and hosts, what the run writes."""
