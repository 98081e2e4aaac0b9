"""Benchmarks of mailcode-exporter against mtail and prometheus-postfix-exporter (`python -m bench`)."""
