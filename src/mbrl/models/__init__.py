"""mbrl.models."""
