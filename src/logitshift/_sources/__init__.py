"""Sources: each reads one kind of input, a chunk at a time, into the summary an estimator needs."""
