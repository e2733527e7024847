"""Labelled tasks for fine-tuning and prompting: the Example type, loaders, built-in tasks, metrics."""
from minigpt.tasks.example import SHAPES, Example

__all__ = ["SHAPES", "Example"]
