"""End-to-end jobs (L4): what each CLI subcommand calls. Every function here reads inputs,
builds library objects, runs one algorithm and writes outputs atomically."""

from .jobs import METHODS, degrade_file, evaluate_files, restore_file, restore_video

__all__ = ["METHODS", "degrade_file", "evaluate_files", "restore_file", "restore_video"]
