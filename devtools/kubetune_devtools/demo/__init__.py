"""The end-to-end demo: real text that ships with Python, turned into instruction tasks."""
