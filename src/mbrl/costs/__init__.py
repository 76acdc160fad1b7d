"""mbrl.costs."""
