"""The benchmark harness's parts: wrk driving, /proc accounting, process control, tables."""
