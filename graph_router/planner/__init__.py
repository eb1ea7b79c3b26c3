"""``graph-router plan``: what Knative's Pod Autoscaler will do with a graph's models under a given
traffic, simulated before deploying (see docs/planner.md)."""
