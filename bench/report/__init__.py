"""`bench report`: tables, plots, paired comparisons and FID/KID from the records of runs."""

from bench.report.command import report_command

__all__ = ["report_command"]
