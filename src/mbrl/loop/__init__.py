"""mbrl.loop."""
