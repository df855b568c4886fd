"""The vocabulary every layer shares: errors and what a source is. Imports nothing of ours."""
