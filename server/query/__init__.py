"""The query pipeline: route, validate, plan, run, cancel and account. Knows nothing of Flight."""
