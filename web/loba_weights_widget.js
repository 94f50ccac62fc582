// LOBA: slider-weight lists (Preview Grid `weights`, Train Slider `preview_weights`) typed into a real text
// field that is checked as you type, with the same rules as the server (loba.images.parse_weights):
// comma-separated finite numbers, at least one. An invalid list is outlined red with the reason as tooltip,
// so it is fixed before queueing rather than reported by the node after.
import { app } from "../../scripts/app.js";

const WEIGHT_WIDGETS = { LOBA_SliderPreviewGrid: "weights", LOBA_TrainSlider: "preview_weights" };
const NUMBER = /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/;

export function weightsProblem(text) {
  const raw = String(text).replaceAll(";", ",").split(",").map((s) => s.trim());
  const items = raw.filter(Boolean);
  if (!items.length) return "empty: give a comma-separated list of weights, e.g. -2, -1, 0, 1, 2";
  if (items.length < raw.length) return `item ${raw.indexOf("") + 1} is empty (two commas in a row, or a comma at an end)`;
  const bad = items.find((item) => !NUMBER.test(item));
  return bad === undefined ? null : `'${bad}' is not a number; give a list like -2, -1, 0, 1, 2`;
}

function validate(input) {
  const problem = weightsProblem(input.value);
  input.classList.toggle("loba-invalid", Boolean(problem));
  input.style.outline = problem ? "2px solid #e04040" : "none";
  input.title = problem ?? "Slider weights, comma-separated; each is a column of the grid.";
  input.dataset.valid = problem ? "false" : "true";
}

function replaceWithCheckedField(node, name) {
  const original = node.widgets?.find((w) => w.name === name);
  if (!original) return;
  const input = document.createElement("input");
  input.type = "text";
  input.className = "loba-weights comfy-multiline-input";
  input.style.cssText = "width:100%;box-sizing:border-box;height:26px;padding:2px 6px;font:12px monospace";
  input.value = original.value ?? "";
  input.addEventListener("input", () => validate(input));
  const widget = node.addDOMWidget(name, "loba-weights", input, {
    getValue: () => input.value,
    setValue: (value) => {
      input.value = value ?? "";
      validate(input);
    },
    getMinHeight: () => 32,
    getMaxHeight: () => 32,
  });
  widget.tooltip = original.tooltip;
  // Same slot as the widget it replaces: widgets_values are saved and restored by position.
  node.widgets.splice(node.widgets.indexOf(widget), 1);
  node.widgets.splice(node.widgets.indexOf(original), 1, widget);
  original.onRemove?.();
  validate(input);
}

app.registerExtension({
  name: "loba.WeightsWidget",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    const name = WEIGHT_WIDGETS[nodeData.name];
    if (!name) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      replaceWithCheckedField(this, name);
      return result;
    };
  },
});
