"""Reliability, bad input and security: every mistake in a space file or on the command line is
rejected with one clear message (exit 2, nothing written), faults injected into running sweeps
lose or duplicate no trial, a 200-trial load sweep, and the security rules (safe YAML, checkpoints
loaded with ``weights_only=True``, secrets redacted from MLflow)."""
