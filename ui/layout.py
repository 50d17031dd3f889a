"""The Gradio page: sidebar, chat pane, settings. Wiring only; behaviour lives in handlers."""

from __future__ import annotations

import json
from importlib import resources

import gradio as gr

from app.chat import ChatSettings
from app.core import App
from app.language import LANGUAGE_NAMES, SUPPORTED
from app.model_files import SUGGESTED_REPO
from app.uploads import supported_suffixes
from ui import api, mcp_tools
from ui.handlers import EXPORT_FORMATS, SETTING_DEFAULTS, Handlers
from ui.i18n import t
from ui.stoppable import TabStops

# One queue group for every chat event, so the app never serializes remote
# backends; a local model queues on its own lock.
CHAT_GROUP = "chat"
CHAT_LIMIT = api.CHAT_CONCURRENCY
# Where the browser keeps a user's chat settings and first-run choice between visits.
PREFS_KEY = "llamadesk-preferences"
# The settings fields' element ids, in SETTING_DEFAULTS' order; head() hands them to touched.js.
SETTING_FIELDS = {
    "system_prompt": "system-prompt",
    "temperature": "temperature",
    "max_tokens": "max-tokens",
    "reply_language": "reply-language",
}


def css() -> str:
    return _asset("app.css")


def browser_js() -> str:
    """Keyboard shortcuts, the queued-message hint and the interface languages Gradio lacks."""
    return _asset("app.js")


def restore_preferences_js() -> str:
    """Settings from the browser's last visit; the first-run panel stays away once dismissed.

    Restored in the browser, not on the server: a server round trip could land after the user's
    first change on a busy server and put the old value back. Gradio runs load events once every
    component's code has loaded, which on a busy machine can be after the user has typed: a field
    the user touched (noted by touched.js from the first moment) keeps its value.

    Every field is also made visible. Gradio then builds the fields now, inside the closed panel,
    instead of when the panel first opens: built then, a field got its initial value put back a
    frame after it appeared, over whatever had been typed into it in that frame.
    """
    defaults = json.dumps(SETTING_DEFAULTS)
    fields = json.dumps(SETTING_FIELDS)
    return f"""(prefs) => {{
        const saved = prefs || {{}};
        const defaults = {defaults};
        const fields = {fields};
        const touched = window.llamadeskTouched || new Set();
        const values = Object.keys(defaults).map((key) =>
            touched.has(fields[key])
                ? {{__type__: "update", visible: true}}
                : {{__type__: "update", visible: true, value: key in saved ? saved[key] : defaults[key]}});
        const hidden = saved.keep_demo ? {{__type__: "update", visible: false}} : undefined;
        // Set once Gradio has applied these outputs, which it does before any timer fires.
        setTimeout(() => {{ document.body.dataset.llamadeskSettings = "restored"; }}, 0);
        return [...values, hidden, hidden];
    }}"""


def head() -> str:
    """Loaded before the app is drawn, so that no early keystroke goes unnoticed."""
    ids = json.dumps(list(SETTING_FIELDS.values()))
    return f"<script>window.llamadeskSettingFields = {ids};</script><script>{_asset('touched.js')}</script>"


def _asset(name: str) -> str:
    return (resources.files("assets") / name).read_text(encoding="utf-8")


def language_choices(auto_key: str) -> list[tuple[str, str]]:
    # The "auto" entry's label is translated in the browser like any other label.
    return [(str(t(auto_key)), "auto")] + [(f"{LANGUAGE_NAMES[c][1]} ({c})", c) for c in SUPPORTED]


def build(app: App, auth: bool = False) -> gr.Blocks:
    handlers = Handlers(app, auth)
    demo_model = bool(app.backends.get().info().demo)
    with gr.Blocks(title="llamadesk", analytics_enabled=False) as demo:
        conversation_id = gr.State("")
        editing = gr.State(False)
        pending_delete = gr.State("")
        # How many times this tab pressed Stop, and Cancel on a summary (see TabStops).
        chat_stops_seen = gr.State(0)
        summary_stops_seen = gr.State(0)
        prefs = gr.BrowserState({}, storage_key=PREFS_KEY)
        with gr.Sidebar(elem_id="sidebar"):
            gr.Markdown("## 🦙 llamadesk")
            new_chat = gr.Button(t("sidebar.new_chat"), variant="primary", elem_id="new-chat")
            search = gr.Textbox(
                label=t("sidebar.search"),
                placeholder=str(t("sidebar.search_placeholder")),
                show_label=False,
                elem_id="search",
                submit_btn=True,
            )
            search_status = gr.Markdown("", elem_id="search-status")
            conversations = gr.Radio(choices=[], label=t("sidebar.conversations"), elem_id="conversations")
            gr.Markdown(t("sidebar.no_conversations"), elem_id="sidebar-empty")
            with gr.Accordion(t("sidebar.rename"), open=False, elem_id="rename-panel"):
                title_box = gr.Textbox(
                    label=t("sidebar.rename"),
                    show_label=False,
                    placeholder=str(t("sidebar.rename_placeholder")),
                    elem_id="title-box",
                )
                rename = gr.Button(t("sidebar.rename"), size="sm", elem_id="rename")
            delete = gr.Button(t("sidebar.delete"), size="sm", variant="stop", elem_id="delete")
            with gr.Column(visible=False, elem_id="delete-confirm") as confirm_group:
                gr.Markdown(t("sidebar.delete_confirm"))
                delete_target = gr.Markdown("", elem_id="delete-target")
                with gr.Row():
                    confirm_delete = gr.Button(
                        t("sidebar.delete"), size="sm", variant="stop", elem_id="delete-yes"
                    )
                    cancel_delete = gr.Button(t("sidebar.cancel"), size="sm", elem_id="delete-no")
            with gr.Accordion(t("sidebar.export"), open=False, elem_id="export-panel"):
                export_format = gr.Radio(
                    EXPORT_FORMATS, value="md", label=t("sidebar.export_format"), elem_id="export-format"
                )
                export = gr.Button(t("sidebar.export"), size="sm", elem_id="export")
                export_file = gr.File(label=t("sidebar.export"), interactive=False, elem_id="export-file")
                import_file = gr.UploadButton(
                    t("sidebar.import"),  # type: ignore[arg-type]  # translated in the browser
                    file_types=[".json"],
                    size="sm",
                    elem_id="import",
                )
                marked = gr.Checkbox(label=t("sidebar.mark"), value=False, elem_id="mark")

        with gr.Column(elem_id="main"):
            banner = gr.Markdown(handlers.banner(app.backends.default_name), elem_id="model-banner")
            gr.Markdown(t("model.demo_note"), visible=demo_model, elem_id="demo-note")
            # On a shared server the operator picks the model; the panel is for a laptop user.
            with gr.Accordion(
                t("first_run.title"), open=False, visible=demo_model and not auth, elem_id="first-run"
            ) as first_run_box:
                gr.Markdown(t("first_run.body"))
                with gr.Row():
                    gguf_path = gr.Textbox(label=t("first_run.gguf_path"), scale=3)
                    use_file = gr.Button(t("first_run.use_file"), scale=1)
                with gr.Row():
                    repo_id = gr.Textbox(label=t("first_run.repo_id"), placeholder=SUGGESTED_REPO, scale=3)
                    download_model = gr.Button(t("first_run.download"), scale=1)
                model_status = gr.Markdown("", elem_id="model-status")
            keep_demo = gr.Button(
                t("first_run.dismiss"), size="sm", visible=demo_model and not auth, elem_id="keep-demo"
            )
            with gr.Tabs():
                with gr.Tab(t("chat.tab"), id="chat-tab"):
                    notice = gr.Markdown("", elem_id="notice")
                    settings_effect = gr.Markdown("", elem_id="settings-effect")
                    chatbot = gr.Chatbot(
                        label=t("chat.tab"),
                        show_label=False,
                        elem_id="chatbot",
                        sanitize_html=True,
                        render_markdown=True,
                        allow_tags=False,
                        buttons=["copy"],
                        feedback_options=None,
                        autoscroll=True,
                    )
                    box = gr.MultimodalTextbox(
                        label=t("chat.send"),
                        placeholder=str(t("chat.placeholder")),
                        show_label=False,
                        file_types=supported_suffixes(),
                        elem_id="message",
                        submit_btn=True,
                    )
                    gr.Markdown(t("chat.queued"), elem_id="queued-note")
                    with gr.Row(elem_id="chat-actions"):
                        stop = gr.Button(t("chat.stop"), variant="stop", size="sm", elem_id="stop")
                        regenerate = gr.Button(t("chat.regenerate"), size="sm", elem_id="regenerate")
                        edit_last = gr.Button(t("chat.edit_last"), size="sm", elem_id="edit-last")
                        resume = gr.Button(t("chat.continue"), size="sm", elem_id="continue")

                    with gr.Accordion(t("settings.title"), open=False, elem_id="settings"):
                        system_prompt = gr.Textbox(
                            label=t("settings.system_prompt"),
                            lines=2,
                            elem_id=SETTING_FIELDS["system_prompt"],
                        )
                        with gr.Row():
                            temperature = gr.Slider(
                                0.0,
                                1.5,
                                value=ChatSettings.temperature,
                                step=0.05,
                                label=t("settings.temperature"),
                                elem_id=SETTING_FIELDS["temperature"],
                            )
                            max_tokens = gr.Slider(
                                16,
                                4096,
                                value=ChatSettings.max_tokens,
                                step=16,
                                label=t("settings.max_tokens"),
                                elem_id=SETTING_FIELDS["max_tokens"],
                            )
                        with gr.Row():
                            reply_language = gr.Dropdown(
                                choices=language_choices("settings.reply_language_auto"),
                                value="auto",
                                label=t("settings.reply_language"),
                                elem_id=SETTING_FIELDS["reply_language"],
                            )
                            backend = gr.Dropdown(
                                choices=handlers.backend_choices(),
                                value=app.backends.default_name,
                                label=t("settings.backend"),
                                elem_id="backend",
                            )

                with gr.Tab(t("summarize.title"), id="summarize-tab"):
                    pdf = gr.File(label=t("summarize.upload"), file_types=supported_suffixes(), elem_id="pdf")
                    with gr.Row():
                        summary_language = gr.Dropdown(
                            choices=language_choices("summarize.language_auto"),
                            value="auto",
                            label=t("summarize.language"),
                        )
                        password = gr.Textbox(label=t("summarize.password"), type="password")
                    with gr.Row():
                        run_summary = gr.Button(t("summarize.run"), variant="primary", elem_id="summarize")
                        cancel_summary = gr.Button(
                            t("summarize.cancel"), variant="stop", elem_id="cancel-summary"
                        )
                    summary_status = gr.Markdown("", elem_id="summary-status")
                    summary = gr.Markdown("", elem_id="summary", sanitize_html=True)
                    download = gr.File(
                        label=t("summarize.download"), interactive=False, elem_id="summary-file"
                    )

        settings = [system_prompt, temperature, max_tokens, reply_language, backend]
        chat_outputs = [box, chatbot, notice, conversation_id, conversations, editing]
        # Progress shows in the chat pane only: never over the sidebar, never as a second error badge.
        # A Stop never waits behind the replies it stops. It stays in the queue, whose join route
        # the guard checks against the session's owner.
        stop_event = dict(api_visibility="private", show_progress="hidden", concurrency_limit=None)
        chat_event = dict(
            api_visibility="private",
            concurrency_limit=CHAT_LIMIT,
            concurrency_id=CHAT_GROUP,
            show_progress_on=[chatbot],
        )
        chat_stops, summary_stops = TabStops(), TabStops()
        send_event = box.submit(
            chat_stops.stream(handlers.send),
            [chat_stops_seen, box, conversation_id, chatbot, editing, *settings],
            chat_outputs,
            # A message sent while a reply streams waits in the box (and says so) and goes next.
            trigger_mode="always_last",
            **chat_event,  # type: ignore[arg-type]
        )
        regen_event = regenerate.click(
            chat_stops.stream(handlers.regenerate),
            [chat_stops_seen, conversation_id, *settings],
            chat_outputs,
            **chat_event,  # type: ignore[arg-type]
        )
        continue_event = resume.click(
            chat_stops.stream(handlers.continue_reply),
            [chat_stops_seen, conversation_id, *settings],
            chat_outputs,
            **chat_event,  # type: ignore[arg-type]
        )
        # A new conversation is titled in an event of its own, after its reply: the next
        # message never waits on the title.
        title_outputs = [conversations]
        for event in (send_event, regen_event, continue_event):
            event.success(
                handlers.title,
                [conversation_id, *settings],
                title_outputs,
                api_visibility="private",
                show_progress="hidden",
            )
        # The notice comes after the stop, so that no last update of the reply overwrites it.
        stop.click(chat_stops.press, [chat_stops_seen], [chat_stops_seen], **stop_event).then(  # type: ignore[arg-type]
            handlers.stopped, [conversation_id], [notice], api_visibility="private", show_progress="hidden"
        )
        run_summary.click(
            summary_stops.stream(handlers.summarize),
            [summary_stops_seen, pdf, summary_language, password, backend, conversation_id],
            [summary_status, summary, download, conversation_id, conversations],
            # Named apart: by default it would take "summarize" and push the public endpoint to /summarize_1.
            api_name="summarize_ui",
            api_visibility="private",
            concurrency_limit=CHAT_LIMIT,
            concurrency_id=CHAT_GROUP,
            # Progress is drawn in the status pane; Gradio's overlay would cover the sidebar.
            show_progress="hidden",
        )
        # Said once the run has stopped, so that no late progress update can cover it.
        cancel_summary.click(
            summary_stops.press,
            [summary_stops_seen],
            [summary_stops_seen],
            **stop_event,  # type: ignore[arg-type]
        ).then(handlers.summary_cancelled, None, [summary_status], api_visibility="private")
        # The plan shows as soon as a file is there, before anything runs.
        for trigger in (pdf.upload, backend.change):
            trigger(
                handlers.preview,
                [pdf, summary_language, password, backend],
                [summary_status],
                api_visibility="private",
                show_progress="hidden",
            )
        edit_last.click(handlers.edit_last, [conversation_id], [box, editing], api_visibility="private")

        hide_confirm = [confirm_group, pending_delete]
        conversations.select(
            handlers.open_conversation,
            [conversations],
            [chatbot, notice, conversation_id, title_box, reply_language, backend, *hide_confirm],
            api_visibility="private",
            show_progress="hidden",
        )
        conversation_id.change(
            handlers.marked, [conversation_id], [marked], api_visibility="private", show_progress="hidden"
        )
        marked.input(handlers.set_marked, [conversation_id, marked], None, api_visibility="private")
        new_chat_outputs = [
            chatbot, notice, conversation_id, conversations, editing, title_box, *hide_confirm
        ]  # fmt: skip
        new_chat.click(handlers.new_chat, None, new_chat_outputs, api_visibility="private")
        # The chatbot's own trash icon starts a new chat too: hiding the history but still sending
        # it to the model would mislead.
        chatbot.clear(handlers.new_chat, None, new_chat_outputs, api_visibility="private")
        search.submit(
            handlers.search,
            [search],
            [conversations, search_status],
            api_visibility="private",
            trigger_mode="always_last",  # a query sent while one runs is answered after it, not dropped
        )
        rename.click(
            handlers.rename,
            [conversation_id, title_box],
            [conversations],
            api_visibility="private",
            show_progress="hidden",
        )
        delete.click(
            handlers.ask_delete,
            [conversation_id],
            [confirm_group, delete_target, pending_delete],
            api_visibility="private",
            show_progress="hidden",
        )
        cancel_delete.click(
            lambda: (gr.update(visible=False), ""), None, hide_confirm, api_visibility="private"
        )
        confirm_delete.click(
            handlers.delete,
            [pending_delete, conversation_id],
            [chatbot, notice, conversation_id, conversations, *hide_confirm],
            api_visibility="private",
            show_progress="hidden",
        )
        export.click(
            handlers.export,
            [conversation_id, export_format],
            [export_file],
            api_visibility="private",
            show_progress="hidden",
        )
        import_file.upload(
            handlers.import_conversation,
            [import_file],
            [chatbot, notice, conversation_id, conversations, title_box],
            api_visibility="private",
            show_progress="hidden",
        )

        demo.load(handlers.sidebar, [conversation_id], [conversations], api_visibility="private")
        demo.load(handlers.refresh_backends, [backend], [backend], api_visibility="private")
        preference_widgets = [system_prompt, temperature, max_tokens, reply_language]
        demo.load(
            None,
            [prefs],
            [*preference_widgets, first_run_box, keep_demo],
            js=restore_preferences_js(),
        )
        demo.load(None, js=browser_js())
        # One event for all four fields: with "always_last", the browser sends the next save only
        # after the last one answered, so an older save can never land last and undo a newer one.
        gr.on(
            [system_prompt.change, temperature.change, max_tokens.change, reply_language.change],
            handlers.save_preferences,
            [prefs, *preference_widgets],
            [prefs, settings_effect],
            trigger_mode="always_last",
            api_visibility="private",
            show_progress="hidden",
        )
        backend.change(handlers.banner, [backend], [banner], api_visibility="private")
        model_outputs = [model_status, backend, banner]
        use_file.click(handlers.use_model_file, [gguf_path], model_outputs, api_visibility="private")
        download_model.click(handlers.download_model, [repo_id], model_outputs, api_visibility="private")
        keep_demo.click(
            handlers.keep_demo,
            [prefs],
            [prefs, first_run_box, keep_demo],
            api_visibility="private",
            show_progress="hidden",
        )
        api.register(handlers)
        mcp_tools.register(handlers)
    return demo
