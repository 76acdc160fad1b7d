"""mbrl.control."""
