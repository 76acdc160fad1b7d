"""mbrl.data."""
