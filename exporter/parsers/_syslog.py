"""Pieces of the syslog line format shared by the parsers of syslog-based mail logs."""

# A syslog timestamp: RFC 3164 ("Dec  4 15:36:10", "Dec 04 ...") or RFC 3339 (rsyslog's high precision).
SYSLOG_TIME = (
    r"(?:[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d"
    r"|\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,9})?(?:Z|[+-]\d\d:?\d\d)?)"
)
