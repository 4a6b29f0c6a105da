"""Small modal dialogs: confirm, feedback text, and the one error dialog every failed worker ends up in."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from nightlab.tui import keymap


class ConfirmDialog(ModalScreen[bool]):
    """Yes / no. Used before anything that cannot be undone from here (stopping a job)."""

    BINDINGS = keymap.bindings("dialog")

    def __init__(self, question: str, detail: str = "") -> None:
        super().__init__()
        self.question = question
        self.detail = detail

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.question, classes="dialog-title")
            if self.detail:
                yield Static(self.detail, classes="dialog-detail")
            yield Label("y yes · n no", classes="dialog-keys")

    def action_yes(self) -> None:
        self.dismiss(True)

    def action_no(self) -> None:
        self.dismiss(False)

    def action_cancel(self) -> None:
        self.dismiss(False)


class FeedbackDialog(ModalScreen[str | None]):
    """Reject with feedback: the text is stored with the decision and the policy reads it."""

    BINDINGS = keymap.bindings("dialog", only=("cancel",))

    def __init__(self, title: str, placeholder: str = "why? (the agent reads this)") -> None:
        super().__init__()
        self.title_text = title
        self.placeholder = placeholder

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(placeholder=self.placeholder, id="feedback")
            yield Label("enter reject · esc cancel", classes="dialog-keys")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self.dismiss(event.value.strip())

    def action_cancel(self) -> None:
        self.dismiss(None)


class ErrorDialog(ModalScreen[None]):
    """What went wrong in a background task, in words; the traceback only for bugs (not for user errors)."""

    BINDINGS = keymap.bindings("dialog", only=("cancel",))

    def __init__(self, title: str, message: str, details: str = "") -> None:
        super().__init__()
        self.title_text = title
        self.message = message
        self.details = details

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog error-dialog"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.message, classes="dialog-detail", markup=False)
            if self.details:
                yield Static(self.details, classes="dialog-traceback", markup=False)
            yield Label("esc close", classes="dialog-keys")

    def action_cancel(self) -> None:
        self.dismiss(None)

    def action_yes(self) -> None:
        self.dismiss(None)
