"""How a summary run looks to a user, from its events: plan, step, tokens done, ETA, warnings.

Shared by the Summarize tab, a PDF dropped in the chat, the /summarize API and the CLI, which differ
only in where they put the text. No gradio here, so the command line stays quick to start.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

from app.doc_chat import Finished
from app.injection import Finding
from app.messages import text
from app.ocr import confidence_summary
from app.summarize import PassText, Plan, PlanReady, Progressed, StepStarted

BAR_CELLS = 20
SHOWN_FINDINGS = 3


def plan_text(plan: Plan, lang: str) -> str:
    backend = f"{plan.backend} · {plan.model}" if plan.model else plan.backend
    tokens = f"{plan.document_tokens:,}"
    if plan.strategy == "single":
        return text("summarize.plan_single", lang, tokens=tokens, backend=backend)
    return text(
        "summarize.plan_chunks",
        lang,
        tokens=tokens,
        chunks=len(plan.chunks),
        merges=plan.merges,
        backend=backend,
    )


def ocr_text(confidence: Mapping[int, float], lang: str) -> str:
    """How OCR did on the scanned pages (page → mean word confidence), or "" when none was needed."""
    if not confidence:
        return ""
    mean, lowest = confidence_summary(confidence)
    return text(
        "summarize.ocr_done",
        lang,
        count=len(confidence),
        mean=f"{mean:.0f}",
        lowest=f"{confidence[lowest]:.0f}",
        page=lowest,
    )


def injection_warning(findings: Sequence[Finding], lang: str, quote: Callable[[str], str] = str) -> str:
    """One line naming where instructions were found (the file name, pages), or "" when none were.

    `quote` makes the document's own words safe for where the line is shown (literal Markdown in the UI).
    """
    if not findings:
        return ""
    places = []
    for finding in findings[:SHOWN_FINDINGS]:
        where = (
            text("summarize.injection_name", lang)
            if finding.page is None
            else text("summarize.injection_page", lang, page=finding.page)
        )
        places.append(f"{where}: “{quote(finding.snippet)}”")
    more = f" (+{len(findings) - SHOWN_FINDINGS})" if len(findings) > SHOWN_FINDINGS else ""
    return f"⚠️ {text('summarize.injection_warning', lang)} {'; '.join(places)}{more}"


def duration(seconds: float) -> str:
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {rest:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def progress_text(progress: Progressed, lang: str) -> str:
    share = progress.done_tokens / max(1, progress.total_tokens)
    filled = round(share * BAR_CELLS)
    counts = text(
        "summarize.progress", lang, done=f"{progress.done_tokens:,}", total=f"{progress.total_tokens:,}"
    )
    line = f"{'▰' * filled}{'▱' * (BAR_CELLS - filled)} {counts} ({share:.0%})"
    if progress.eta_s is not None:
        line += " · " + text("summarize.eta", lang, eta=duration(progress.eta_s))
    return line


def step_text(step: StepStarted, lang: str) -> str:
    pages = (
        f"p. {step.first_page}"
        if step.first_page == step.last_page
        else f"pp. {step.first_page}–{step.last_page}"
    )
    key = {"single": "step_map", "map": "step_map", "merge": "step_merge", "final": "step_final"}[step.kind]
    return f"{text('summarize.' + key, lang, pages=pages)} ({step.index}/{step.steps})"


def urgent_event(event: object) -> bool:
    """Everything but streamed text and progress ticks is worth showing at once."""
    return not isinstance(event, (PassText, Progressed))


@dataclass
class SummaryView:
    """The state of a run as the user sees it; feed it every event."""

    lang: str
    warning: str = ""
    plan: Plan | None = None
    step: StepStarted | None = None
    progress: Progressed | None = None
    pass_text: str = ""  # the pass being written, as it streams
    finished: Finished | None = None

    def feed(self, event: object) -> None:
        if isinstance(event, PlanReady):
            self.plan = event.plan
        elif isinstance(event, StepStarted):
            self.step, self.pass_text = event, ""
        elif isinstance(event, Progressed):
            self.progress = event
        elif isinstance(event, PassText):
            self.pass_text = event.text
        elif isinstance(event, Finished):
            self.finished = event

    def fed(self, events: Iterator[object]) -> Iterator[object]:
        """The events, each fed to this view first: a renderer may skip some and still show the latest."""
        for event in events:
            self.feed(event)
            yield event

    def status(self, markdown: bool = True) -> str:
        """Warning, plan, then the step and the progress bar (or the time it took, once done)."""
        bold = "**" if markdown else ""
        lines = [self.warning] if self.warning else []
        if self.plan is not None:
            lines.append(
                f"{bold}{text('summarize.plan', self.lang)}:{bold} {plan_text(self.plan, self.lang)}"
            )
        if self.finished is not None:
            lines.append(duration(self.finished.outcome.result.elapsed_s))
            return "\n\n".join(lines)
        if self.step is not None:
            lines.append(step_text(self.step, self.lang))
        if self.progress is not None:
            lines.append(progress_text(self.progress, self.lang))
        return "\n\n".join(lines)

    @property
    def summary(self) -> str:
        return self.finished.outcome.result.summary if self.finished else ""
