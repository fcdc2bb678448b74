"""Outputs. Each takes bulk parts and settles every item: delivered, or dead-lettered."""
