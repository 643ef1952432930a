"""musubi-tuner double: lets `python -m musubi_tuner.<script>` work (bin/python puts src/ on PYTHONPATH)."""
