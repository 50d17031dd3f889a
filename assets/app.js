async () => {
  window.llamadeskShortcuts = true;
  // Keyboard shortcuts, a hint for a message sent while a reply is still being written, and
  // the interface languages that Gradio itself does not ship (Italian): picked from the
  // browser's languages and offered in the footer's language picker.
  const OURS = ["en", "de", "fr", "it", "pt", "hi", "es", "th"];
  const NAMES = { it: "Italiano" };

  const busy = () => {
    const tracker = document.querySelector('#chatbot [data-testid="status-tracker"]');
    return !!tracker && !tracker.classList.contains("hide");
  };
  const box = () => document.querySelector("#message textarea");

  const markQueued = () => {
    if (!busy() || !box() || !box().value.trim()) return;
    document.body.classList.add("llamadesk-queued");
    // The deferred send empties the box when it starts: the hint has done its job then.
    const watch = setInterval(() => {
      if (!box() || !box().value.trim()) {
        document.body.classList.remove("llamadesk-queued");
        clearInterval(watch);
      }
    }, 200);
  };

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && busy()) {
      document.querySelector("#stop")?.click();
      event.preventDefault();
    } else if ((event.ctrlKey || event.metaKey) && event.shiftKey && event.key.toLowerCase() === "o") {
      event.preventDefault();
      document.querySelector("#new-chat")?.click();
      box()?.focus();
    } else if (event.key === "Enter" && !event.shiftKey && event.target === box()) {
      markQueued();
    }
  }, true);
  document.addEventListener("click", (event) => {
    if (event.target instanceof Element && event.target.closest("#message .submit-button")) markQueued();
  }, true);

  // Gradio shows an attached PDF as a bare icon: label each thumbnail with its file's name.
  let attached = [];
  let shown = 0;
  const labelThumbnails = () => {
    const thumbs = document.querySelectorAll("#message .thumbnail-wrapper");
    if (!thumbs.length && shown) attached = []; // sent or removed: the next files start afresh
    shown = thumbs.length;
    thumbs.forEach((thumb, i) => {
      const name = attached[i];
      if (!name) return;
      let label = thumb.querySelector(".attachment-name");
      if (!label) {
        label = document.createElement("span");
        label.className = "attachment-name";
        thumb.appendChild(label);
      }
      if (label.textContent !== name) label.textContent = name;
      thumb.title = name;
    });
  };
  const remember = (files) => {
    attached.push(...[...(files || [])].map((file) => file.name));
    labelThumbnails();
  };
  document.addEventListener("change", (event) => {
    if (event.target instanceof Element && event.target.matches("#message input[type=file]")) {
      remember(event.target.files);
    }
  }, true);
  document.addEventListener("drop", (event) => {
    if (event.target instanceof Element && event.target.closest("#message")) remember(event.dataTransfer?.files);
  }, true);
  const message = document.querySelector("#message");
  if (message) new MutationObserver(labelThumbnails).observe(message, { subtree: true, childList: true });

  const coreUrl = performance
    .getEntriesByType("resource")
    .map((entry) => entry.name)
    .find((name) => /\/assets\/core-[^/]*\.js$/.test(name));
  if (!coreUrl) return;
  const core = await import(coreUrl);
  if (!Array.isArray(core.language_choices) || typeof core.changeLocale !== "function") return;
  const known = new Set(core.language_choices.map((choice) => choice[1]));
  for (const [code, name] of Object.entries(NAMES)) {
    if (!known.has(code)) core.language_choices.push([name, code]);
  }
  const wanted = (navigator.languages || [navigator.language])
    .map((tag) => tag.toLowerCase().split("-")[0])
    .find((code) => OURS.includes(code));
  if (wanted && !known.has(wanted)) {
    core.changeLocale(wanted);
    // A tab takes its label when it is shown: show each once so that every label is translated.
    await new Promise((resolve) => setTimeout(resolve, 0));
    const tabs = [...document.querySelectorAll('[role="tab"]')];
    const selected = tabs.find((tab) => tab.getAttribute("aria-selected") === "true");
    for (const tab of tabs) if (tab !== selected) tab.click();
    selected?.click();
  }
}
