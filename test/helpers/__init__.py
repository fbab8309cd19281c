"""What several test folders share: the control-loop harness and its safety invariants, the
adapter node driven by hand, spinning an executor, controllers workers can import.
Importable as ``helpers`` (``pythonpath`` in setup.cfg)."""
