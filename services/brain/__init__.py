"""Brain workers: stateless processes that step runs under fenced leases."""
