// Charts of the latest result per node and backend: throughput and p95 TTFT against concurrency (uPlot).
"use strict";

const COLORS = ["#1f6feb", "#d1242f", "#1a7f37", "#9a6700", "#8250df", "#0e7490", "#bf3989", "#57606a"];

for (const bar of document.querySelectorAll(".score-fill")) {
  bar.style.width = `${Math.max(0, Math.min(100, Number(bar.dataset.score)))}%`;
}

function latestPerSeries(results) {
  const latest = new Map();
  for (const result of results) {  // newest first from the API
    const key = `${result.host} · ${result.backend}`;
    if (!latest.has(key)) latest.set(key, result);
  }
  return latest;
}

function chart(element, series, xs, pick, unit) {
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
      ...[...series.keys()].map((label, index) => ({
        label, stroke: COLORS[index % COLORS.length], width: 2, spanGaps: true,
        points: { size: 7, fill: COLORS[index % COLORS.length] },
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
  const plots = [
    chart(throughput, series, xs, (level) => level.output_tokens_per_s, "tok/s"),
    chart(document.getElementById("chart-ttft"), series, xs, (level) => level.ttft_p95_ms, "ms"),
  ];
  window.addEventListener("resize", () => {
    for (const plot of plots) plot.setSize({ width: plot.root.parentElement.clientWidth, height: 300 });
  });
}

drawCharts().catch((problem) => notify(problem.message, "error"));
