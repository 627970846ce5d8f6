"""Typed errors for bad input. Each names the field, the rule and the value received."""

from __future__ import annotations


class HolmesInputError(ValueError):
    """Bad input at a boundary: a record, a message, a request or a config value.

    >>> e = InvalidFieldError("fs_hz", "must be 250 for this model", 360.0)
    >>> str(e)
    'fs_hz must be 250 for this model, got 360.0'
    """


class InvalidFieldError(HolmesInputError):
    def __init__(self, field: str, rule: str, value, options=None):
        self.field = field
        self.rule = rule
        self.value = value
        self.options = list(options) if options is not None else None
        msg = f"{field} {rule}, got {value!r}"
        if self.options is not None:
            msg += f" (valid: {', '.join(map(str, self.options))})"
        super().__init__(msg)

    def __reduce__(self):  # rebuilt from its fields, so it crosses a process pool as itself
        return type(self), (self.field, self.rule, self.value, self.options)


class RecordError(HolmesInputError):
    """A record that cannot be used: missing file, truncated, wrong sampling rate, unknown label."""

    def __init__(self, record: str, field: str, rule: str, value):
        self.record = record
        self.field = field
        self.rule = rule
        self.value = value
        super().__init__(f"record {record}: {field} {rule}, got {value!r}")

    def __reduce__(self):
        return type(self), (self.record, self.field, self.rule, self.value)
