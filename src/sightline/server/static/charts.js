// Draws the analytics charts from the JSON in the page; the tables under them hold the same numbers.
(function () {
  "use strict";
  var source = document.getElementById("chart-data");
  if (!source || !window.Chart) { return; }
  var data = JSON.parse(source.textContent);
  var palette = ["#3056d3", "#12b76a", "#f79009", "#7a4fd6", "#f04438", "#0ba5ec", "#ee46bc", "#667085"];

  function format(unit, value) {
    if (value === null || value === undefined) { return "—"; }
    if (unit === "usd") {
      if (value === 0) { return "$0"; }
      return "$" + (Math.abs(value) >= 1 ? value.toFixed(2) : String(Number(value.toPrecision(2))));
    }
    if (unit === "ms") { return value >= 1000 ? (value / 1000).toFixed(2) + " s" : Math.round(value) + " ms"; }
    if (unit === "pct") { return (value * 100).toFixed(1) + "%"; }
    if (Math.abs(value) >= 1e6) { return (value / 1e6).toFixed(1) + "M"; }
    if (Math.abs(value) >= 1e4) { return (value / 1e3).toFixed(0) + "k"; }
    return String(Math.round(value * 100) / 100);
  }

  function config(spec) {
    var horizontal = spec.kind === "hbar";
    var series = horizontal ? spec.series.slice(0, 1) : spec.series;
    var datasets = series.map(function (s, i) {
      var color = palette[i % palette.length];
      return {
        label: s.label,
        data: s.values,
        backgroundColor: spec.kind === "line" ? color : color + "cc",
        borderColor: color,
        borderWidth: spec.kind === "line" ? 2 : 0,
        pointRadius: spec.kind === "line" ? 2 : 0,
        tension: 0.25,
        spanGaps: true,
        borderDash: spec.kind === "line" && /p95/.test(s.label) ? [5, 4] : undefined,
      };
    });
    var valueAxis = {
      beginAtZero: true,
      stacked: spec.kind === "bar",
      ticks: { callback: function (v) { return format(spec.unit, v); } },
      grid: { color: "#eef0f3" },
    };
    var labelAxis = { stacked: spec.kind === "bar", grid: { display: false }, ticks: { maxRotation: 0, autoSkipPadding: 12 } };
    return {
      type: spec.kind === "line" ? "line" : "bar",
      data: { labels: spec.labels, datasets: datasets },
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        indexAxis: horizontal ? "y" : "x",
        interaction: { mode: "index", intersect: false },
        scales: horizontal ? { x: valueAxis, y: labelAxis } : { x: labelAxis, y: valueAxis },
        plugins: {
          legend: { display: datasets.length > 1, position: "bottom", labels: { boxWidth: 12 } },
          tooltip: {
            callbacks: {
              label: function (ctx) { return ctx.dataset.label + ": " + format(spec.unit, ctx.parsed[horizontal ? "x" : "y"]); },
            },
          },
        },
      },
    };
  }

  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var spec = data[canvas.getAttribute("data-chart")];
    if (!spec) { return; }
    new window.Chart(canvas, config(spec));
    canvas.setAttribute("data-drawn", "true");
    var table = canvas.closest(".chart-card").querySelector("details.chart-table");
    if (table) { table.open = false; }
  });
})();
