"""mailcode-exporter: count mail server response codes from mail logs for Prometheus."""

__version__ = "0.1.0"
