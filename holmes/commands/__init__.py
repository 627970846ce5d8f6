"""Sub-commands of the holmes CLI."""
