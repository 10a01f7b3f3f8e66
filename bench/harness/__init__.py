"""The side-by-side benchmark harness behind ``bench/run.py`` (not part of the sheafdb package)."""
