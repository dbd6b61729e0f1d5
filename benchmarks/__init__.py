"""Benchmarks of the workbench: preprocessing memory, caption generation speed, smoke pipeline time."""
