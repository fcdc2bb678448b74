"""Tailing: which files match (paths), what changed (notify), which file is which
(identity), and reading appended bytes (reader), as in Vector's file source."""
