"""mbrl.sim."""
