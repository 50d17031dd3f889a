// Runs in the page's <head>, before Gradio draws anything. It notes the settings fields the user
// has touched. Gradio restores saved settings only once every component has loaded: on a busy
// machine the user may have typed by then, and writing the saved value back would wipe it.
window.llamadeskTouched = new Set();
// The fields' ids come from the page (ui/layout.py's SETTING_FIELDS), set just before this runs.
const llamadeskSettingFields = window.llamadeskSettingFields.map((id) => `#${id}`).join(", ");
for (const type of ["pointerdown", "keydown", "input", "change"]) {
  document.addEventListener(type, (event) => {
    const field = event.target instanceof Element ? event.target.closest(llamadeskSettingFields) : null;
    if (field) window.llamadeskTouched.add(field.id);
  }, true);
}
