"""Training jobs on local GPUs: inventory, queue, leases, placement, processes."""
