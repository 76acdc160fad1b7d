"""mbrl.ros."""
