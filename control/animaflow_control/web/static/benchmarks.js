// Charts of the latest result per node and backend: throughput and p95 TTFT against concurrency (uPlot).
"use strict";

const COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#0e7490", "#bf3989", "#57606a"];

for (const bar of document.querySelectorAll(".score-fill")) {
  bar.style.width = `${Math.max(0, Math.min(100, Number(bar.dataset.score)))}%`;
}

function seriesLabel(result) {
  return `${result.host} · ${result.backend}${result.workload === "chat" ? "" : ` · ${result.workload}`}`;
}

function latestPerSeries(results) {
  const latest = new Map();
  for (const result of results) {  // newest first from the API
    const key = seriesLabel(result);
    if (!latest.has(key)) latest.set(key, result);
  }
  return latest;
}

const UNIQUE = " (no shared prefix)";

// The shared-prefix workload's control requests (no shared prefix) as a dashed line of their own, in the
// same colour, on the TTFT chart.
function withUniquePrefix(series) {
  const both = new Map();
  for (const [label, result] of series) {
    both.set(label, result);
    if (result.levels.some((level) => level.ttft_p95_unique_prefix_ms != null)) {
      both.set(label + UNIQUE, {
        ...result, levels: result.levels.map((level) => ({ ...level, ttft_p95_ms: level.ttft_p95_unique_prefix_ms })),
      });
    }
  }
  return both;
}

function chart(element, series, xs, pick, unit, colours) {
  const data = [xs, ...[...series.values()].map((result) => {
    const byLevel = new Map(result.levels.map((level) => [level.concurrency, pick(level)]));
    return xs.map((x) => byLevel.get(x) ?? null);
  })];
  const opts = {
    width: element.clientWidth || 560,
    height: 300,
    scales: { x: { time: false, distr: 3, log: 2 } },
    axes: [
      { label: "concurrent requests", stroke: "#57606a", grid: { stroke: "#eaeef2" } },
      { label: unit, stroke: "#57606a", grid: { stroke: "#eaeef2" }, size: 60 },
    ],
    series: [
      { label: "concurrency" },
      ...[...series.keys()].map((label) => ({
        label, stroke: colours(label), width: 2, spanGaps: true, dash: label.endsWith(UNIQUE) ? [6, 4] : undefined,
        points: { size: 7, fill: colours(label) },
        value: (u, v) => (v == null ? "—" : `${v.toFixed(1)} ${unit}`),
      })),
    ],
  };
  return new uPlot(opts, data, element);
}

async function drawCharts() {
  const throughput = document.getElementById("chart-throughput");
  if (!throughput) return;
  const { results } = await api("GET", "/api/benchmarks");
  const series = latestPerSeries(results);
  const xs = [...new Set([...series.values()].flatMap((r) => r.levels.map((l) => l.concurrency)))].sort((a, b) => a - b);
  // One colour per node, backend and workload on both charts.
  const keys = [...series.keys()];
  const colours = (label) => COLORS[keys.indexOf(label.replace(UNIQUE, "")) % COLORS.length];
  const plots = [
    chart(throughput, series, xs, (level) => level.output_tokens_per_s, "tok/s", colours),
    chart(document.getElementById("chart-ttft"), withUniquePrefix(series), xs, (level) => level.ttft_p95_ms, "ms", colours),
  ];
  window.addEventListener("resize", () => {
    for (const plot of plots) plot.setSize({ width: plot.root.parentElement.clientWidth, height: 300 });
  });
}

drawCharts().catch((problem) => notify(problem.message, "error"));
