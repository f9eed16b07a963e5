"""The few truly exceptional situations of the language package.

    NurtureLanguageError
     ├── TemplateError        a template that does not compile (carries the template line)
     └── RenderError          a template that fails to render with the given variables

User mistakes found while loading are `Diagnostic`s, not exceptions; these two are raised by
`dsl.templates` so that the loader (at check time) and the engine (at send time) can decide
what a failure means for them.
"""

from __future__ import annotations


class NurtureLanguageError(Exception):
    """A problem with workflow language input."""


class TemplateError(NurtureLanguageError):
    """A template does not compile."""

    def __init__(self, message: str, line: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.line = line


class RenderError(NurtureLanguageError):
    """A template failed to render."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
