// LOBA: a live loss chart inside every LOBA Train Slider node.
// Fed by the server's `loba.loss` websocket events for that node id; after a page reload it catches up from
// GET /loba/runs/{node id} (the server keeps each run's latest state); after the run it shows the final
// curve from the node's executed message (ui.loba_losses), which also restores it when a cached run is re-shown.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";

const NODE_TYPE = "LOBA_TrainSlider";
const CHART_HEIGHT = 190;
const SMOOTHING = 0.1; // exponential moving average factor of the dark line

function newRun() {
  // drifts: [step, canary drift] pairs, only at the steps that measured one (loba.train.canaries)
  return { start: 0, losses: [], drifts: [], lr: null, total: null, running: false, error: null };
}

function chartNode(id) {
  const node = app.graph?.getNodeById?.(Number(id)) ?? app.graph?.getNodeById?.(id);
  return node?.lobaChart ? node : null;
}

function movingAverage(values) {
  const out = [];
  let avg = values[0] ?? 0;
  for (const v of values) {
    avg = avg + SMOOTHING * (v - avg);
    out.push(avg);
  }
  return out;
}

function drawLine(ctx, values, x, y, color, width) {
  ctx.strokeStyle = color;
  ctx.lineWidth = width;
  ctx.beginPath();
  values.forEach((v, i) => (i ? ctx.lineTo(x(i), y(v)) : ctx.moveTo(x(i), y(v))));
  ctx.stroke();
}

function drawDrift(ctx, run, width, height, pad, total) {
  // The canary drift as a second series on its own scale (0 .. its maximum), in orange.
  if (!run.drifts.length) return;
  const high = Math.max(...run.drifts.map(([, d]) => d)) || 1;
  const px = (s) => pad.left + (s / total) * (width - pad.left - pad.right);
  const py = (d) => height - pad.bottom - (d / high) * (height - pad.top - pad.bottom);
  ctx.strokeStyle = "#ff9f40";
  ctx.lineWidth = 1.5;
  ctx.beginPath();
  run.drifts.forEach(([s, d], i) => (i ? ctx.lineTo(px(s), py(d)) : ctx.moveTo(px(s), py(d))));
  ctx.stroke();
  const last = run.drifts[run.drifts.length - 1][1];
  ctx.fillStyle = "#ff9f40";
  ctx.fillText(`drift ${last.toPrecision(3)}`, width - 80, 14);
  ctx.fillStyle = "#bbb";
}

function draw(chart) {
  const { canvas, run } = chart;
  const width = Math.max(120, canvas.clientWidth || 300);
  const height = Math.max(80, canvas.clientHeight || CHART_HEIGHT - 20);
  const ratio = window.devicePixelRatio || 1;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  const ctx = canvas.getContext("2d");
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.fillStyle = "#1b1b1b";
  ctx.fillRect(0, 0, width, height);
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#bbb";
  const values = run.losses;
  if (!values.length) {
    ctx.fillText("loss: waiting for the first step", 8, 16);
    return;
  }
  const pad = { left: 8, right: 8, top: 22, bottom: 8 };
  const total = Math.max(run.total ?? 0, run.start + values.length);
  const low = Math.min(...values), high = Math.max(...values);
  const span = high - low || Math.abs(high) || 1;
  const x = (i) => pad.left + ((run.start + i + 1) / total) * (width - pad.left - pad.right);
  const y = (v) => height - pad.bottom - ((v - low) / span) * (height - pad.top - pad.bottom);
  drawLine(ctx, values, x, y, "rgba(120, 170, 255, 0.45)", 1);
  drawLine(ctx, movingAverage(values), x, y, "#4f8cff", 2);
  drawDrift(ctx, run, width, height, pad, total);
  const step = run.start + values.length;
  const last = values[values.length - 1];
  const state = run.error ? `error` : run.running ? "training" : "done";
  const lr = run.lr == null ? "" : `  lr ${run.lr.toExponential(1)}`;
  ctx.fillText(`step ${step}/${total}  loss ${last.toPrecision(4)}${lr}  (${state})`, 8, 14);
  chart.element.dataset.steps = String(step);
  chart.element.dataset.state = state;
}

function attachChart(node) {
  const element = document.createElement("div");
  element.className = "loba-loss-chart";
  element.style.cssText = "width:100%;height:100%;box-sizing:border-box;padding:2px 0";
  const canvas = document.createElement("canvas");
  canvas.style.cssText = "width:100%;height:100%;display:block;border-radius:4px";
  canvas.title = "LOBA loss per step: light = each step, dark = moving average. It should fall, then flatten. "
    + "Orange = canary drift (how far the slider moves generic prompts; its own scale).";
  element.appendChild(canvas);
  const widget = node.addDOMWidget("loba_loss_chart", "loba-loss-chart", element, {
    serialize: false,
    hideOnZoom: false,
    getMinHeight: () => CHART_HEIGHT,
    getMaxHeight: () => CHART_HEIGHT * 2,
  });
  widget.serialize = false; // a display, never a value in the workflow or the prompt
  node.lobaChart = { element, canvas, run: newRun() };
  new ResizeObserver(() => draw(node.lobaChart)).observe(canvas);
  draw(node.lobaChart);
}

async function catchUp(node) {
  // After a page reload the websocket only brings new steps: fetch what the server already has.
  try {
    const response = await api.fetchApi(`/loba/runs/${encodeURIComponent(node.id)}`);
    if (!response.ok) return;
    const state = await response.json();
    const run = newRun();
    run.start = state.start ?? 0;
    run.losses = state.losses ?? [];
    run.drifts = state.canary_drifts ?? [];
    run.total = state.total ?? null;
    run.running = Boolean(state.running);
    run.error = state.error ?? null;
    run.lr = state.learning_rates?.length ? state.learning_rates[state.learning_rates.length - 1] : null;
    if (run.losses.length >= node.lobaChart.run.losses.length) node.lobaChart.run = run;
    draw(node.lobaChart);
  } catch (error) {
    console.warn("LOBA: could not fetch the run state", error);
  }
}

function onLoss({ detail }) {
  const node = chartNode(detail?.node);
  if (!node) return;
  let run = node.lobaChart.run;
  const next = run.start + run.losses.length + 1;
  if (run.running && detail.step < next) return; // already drawn (caught up from the server)
  if (!run.running || detail.step > next) {
    // A new run, a resumed one (its first step follows the checkpoint's), or a gap: start from this step.
    run = node.lobaChart.run = newRun();
    run.start = detail.step - 1;
  }
  run.running = true;
  run.total = detail.total;
  run.lr = detail.lr;
  run.losses.push(detail.loss);
  if (detail.canary_drift != null) run.drifts.push([detail.step, detail.canary_drift]);
  draw(node.lobaChart);
}

function onDone({ detail }) {
  const node = chartNode(detail?.node);
  if (!node) return;
  node.lobaChart.run.running = false;
  node.lobaChart.run.error = detail.error ?? null;
  draw(node.lobaChart);
}

app.registerExtension({
  name: "loba.LossChart",
  async setup() {
    api.addEventListener("loba.loss", onLoss);
    api.addEventListener("loba.done", onDone);
  },
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (nodeData.name !== NODE_TYPE) return;
    const onNodeCreated = nodeType.prototype.onNodeCreated;
    nodeType.prototype.onNodeCreated = function () {
      const result = onNodeCreated?.apply(this, arguments);
      attachChart(this);
      return result;
    };
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (output) {
      onExecuted?.apply(this, arguments);
      const losses = output?.loba_losses;
      if (this.lobaChart && Array.isArray(losses) && losses.length) {
        const run = this.lobaChart.run;
        // The server keeps the last 2000 losses: the final curve replaces the live one.
        const finished = newRun();
        finished.total = run.total ?? losses.length;
        finished.start = Math.max(0, (run.total ?? losses.length) - losses.length);
        finished.losses = losses;
        finished.lr = run.lr;
        finished.drifts = run.drifts;
        this.lobaChart.run = finished;
        draw(this.lobaChart);
      }
    };
  },
  async afterConfigureGraph() {
    // A loaded or reloaded page: catch up on the runs the server knows for these node ids (listed first, so
    // nodes that never ran cost no request and no 404 in the console).
    const charts = (app.graph?.nodes ?? []).filter((node) => node.lobaChart);
    if (!charts.length) return;
    try {
      const known = await (await api.fetchApi("/loba/runs")).json();
      for (const node of charts) {
        if (String(node.id) in known) await catchUp(node);
      }
    } catch (error) {
      console.warn("LOBA: could not list the runs", error);
    }
  },
});
