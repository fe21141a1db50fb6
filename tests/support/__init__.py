"""Test support shared by the suites: the OTLP receiver."""
