"""Real mail servers on loopback for end-to-end tests: a private Postfix, an SMTP sink, scenarios."""
