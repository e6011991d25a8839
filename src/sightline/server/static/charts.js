// Draws the analytics charts from the JSON in the page; the tables under them hold the same numbers.
// Colours: a series names its colour (see Series in dashboard/tools/analytics.py): a place in the palette
// (a model keeps its place among the project's models, so its colour, whatever the range), a hash of
// its label (users, templates, score names), or a colour of the stylesheet (ok, error, ...), read
// from its custom properties so the dark theme applies. A click on a bar or a point opens the
// generations of that bucket (and series), from the bucket times and filters in the JSON.
(function () {
  "use strict";
  var source = document.getElementById("chart-data");
  if (!source || !window.Chart) { return; }
  var data = JSON.parse(source.textContent);
  var links = data._links || { href: "/generations", buckets: [] };
  var palette = ["#3056d3", "#12b76a", "#f79009", "#7a4fd6", "#f04438", "#0ba5ec", "#ee46bc", "#667085", "#a15c07", "#0e9384"];
  var LABEL_MAX = 22; // longer axis labels are cut (the tooltip shows them whole)

  function cssColor(name, fallback) {
    var value = getComputedStyle(document.documentElement).getPropertyValue(name).trim();
    return value || fallback;
  }

  function hash(text) {
    var h = 2166136261;
    for (var i = 0; i < text.length; i++) { h = Math.imul(h ^ text.charCodeAt(i), 16777619); }
    return h >>> 0;
  }

  // `taken`: the palette places already used in this chart. A hashed colour that another series of
  // the chart already has moves to the next free place (two users never share a colour on one chart).
  function colorOf(series, index, taken) {
    var c = series.color;
    if (c && c.charAt(0) === "p") { return palette[Number(c.slice(1)) % palette.length]; }
    if (c === "h") {
      var place = hash(series.label) % palette.length;
      for (var tries = 0; tries < palette.length && taken[place]; tries++) { place = (place + 1) % palette.length; }
      taken[place] = true;
      return palette[place];
    }
    if (c && c.slice(0, 2) === "--") { return cssColor(c, palette[index % palette.length]); }
    return palette[index % palette.length];
  }

  function alpha(color, suffix) {
    return /^#[0-9a-f]{6}$/i.test(color) ? color + suffix : color;
  }

  function format(unit, value) {
    if (value === null || value === undefined) { return "—"; }
    if (unit === "usd") {
      if (value === 0) { return "$0"; }
      return "$" + (Math.abs(value) >= 1 ? value.toFixed(2) : String(Number(value.toPrecision(2))));
    }
    if (unit === "ms") {
      if (value >= 1000) { return (value / 1000).toFixed(2) + " s"; }
      return (value >= 10 || Number.isInteger(value) ? Math.round(value) : value.toFixed(1)) + " ms";
    }
    if (unit === "pct") { return (value * 100).toFixed(1) + "%"; }
    if (unit === "rating") { return (Number.isInteger(value) ? String(value) : value.toFixed(2)) + "★"; }
    if (Math.abs(value) >= 1e6) { return (value / 1e6).toFixed(1) + "M"; }
    if (Math.abs(value) >= 1e4) { return (value / 1e3).toFixed(0) + "k"; }
    return String(Math.round(value * 100) / 100);
  }

  function cut(label) {
    label = String(label);
    return label.length > LABEL_MAX ? label.slice(0, LABEL_MAX - 1) + "…" : label;
  }

  // The /generations address of bucket `index` of a time chart (and of its series `s`, when one).
  function bucketLink(spec, index, s) {
    var span = links.buckets[index];
    if (!span) { return null; }
    var url = new URL(links.href, window.location.origin);
    url.searchParams.set("range", "custom");
    url.searchParams.set("from", span[0]);
    url.searchParams.set("to", span[1]);
    var filter = s !== null && spec.series[s] ? spec.series[s].filter : null;
    if (filter) { Object.keys(filter).forEach(function (k) { url.searchParams.set(k, filter[k]); }); }
    return url.pathname + url.search;
  }

  function linkAt(chart, spec, event) {
    if (spec.kind === "hbar") {
      var bars = chart.getElementsAtEventForMode(event, "index", { intersect: false, axis: "y" }, false);
      return bars.length && spec.links ? spec.links[bars[0].index] : null;
    }
    var hit = chart.getElementsAtEventForMode(event, "nearest", { intersect: true }, false);
    if (hit.length) { return bucketLink(spec, hit[0].index, hit[0].datasetIndex); }
    var near = chart.getElementsAtEventForMode(event, "index", { intersect: false }, false);
    return near.length ? bucketLink(spec, near[0].index, spec.series.length === 1 ? 0 : null) : null;
  }

  function config(spec) {
    var horizontal = spec.kind === "hbar";
    var series = horizontal ? spec.series.slice(0, 1) : spec.series;
    // Points stay drawn while a line has few of them (a line of three buckets, or one, still
    // shows), and a point alone between empty buckets is always drawn.
    function radii(values) {
      var present = values.filter(function (v) { return v !== null && v !== undefined; }).length;
      return values.map(function (v, i) {
        if (v === null || v === undefined) { return 0; }
        var alone = values[i - 1] == null && values[i + 1] == null;
        return present <= 48 || alone ? 3 : 1.5;
      });
    }
    var taken = {};
    series.forEach(function (s) { if (s.color && s.color.charAt(0) === "p") { taken[Number(s.color.slice(1)) % palette.length] = true; } });
    var datasets = series.map(function (s, i) {
      var color = colorOf(s, i, taken);
      return {
        label: s.label,
        data: s.values,
        backgroundColor: spec.kind === "line" ? color : alpha(color, "cc"),
        borderColor: color,
        borderWidth: spec.kind === "line" ? 2 : 0,
        pointRadius: spec.kind === "line" ? radii(s.values) : 0,
        pointHoverRadius: 5,
        tension: 0.25,
        spanGaps: true,
        borderDash: spec.kind === "line" && /p95/.test(s.label) ? [5, 4] : undefined,
        maxBarThickness: 48,
      };
    });
    var grid = cssColor("--chart-grid", "#e3e6eb");
    var valueAxis = {
      beginAtZero: true,
      stacked: spec.kind === "bar",
      ticks: { callback: function (v) { return format(spec.unit, v); } },
      grid: { color: grid },
    };
    if (spec.unit === "rating") { valueAxis.min = 0; valueAxis.max = 5; valueAxis.ticks.stepSize = 1; }
    var labelAxis = {
      stacked: spec.kind === "bar",
      grid: { display: false },
      ticks: horizontal
        // Every bar named (never every other one): long names are cut, the tooltip has them whole.
        ? { autoSkip: false, callback: function (v) { return cut(this.getLabelForValue(v)); } }
        : { maxRotation: 0, autoSkipPadding: 12 },
    };
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
          legend: {
            display: datasets.length > 1,
            position: "bottom",
            labels: {
              boxWidth: 12,
              generateLabels: function (chart) {
                var items = window.Chart.defaults.plugins.legend.labels.generateLabels(chart);
                items.forEach(function (item) { item.text = cut(item.text); });
                return items;
              },
            },
          },
          tooltip: {
            callbacks: {
              label: function (ctx) { return ctx.dataset.label + ": " + format(spec.unit, ctx.parsed[horizontal ? "x" : "y"]); },
            },
          },
        },
      },
    };
  }

  // Drawn again when the theme changes (the switch, or the system's setting): colours are read anew.
  var drawn = [];
  function drawAll() {
    drawn.forEach(function (chart) { chart.destroy(); });
    drawn = [];
    Chart.defaults.color = cssColor("--chart-text", "#667085");
    document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
      var spec = data[canvas.getAttribute("data-chart")];
      if (!spec) { return; }
      var box = canvas.closest(".chart-box");
      if (spec.kind === "hbar" && box) {
        // Room for every label: about 26 px a bar.
        box.style.height = Math.max(180, spec.labels.length * 26 + 40) + "px";
      }
      var options = config(spec);
      if (spec.clickable) {
        options.options.onClick = function (event, elements, chart) {
          var href = linkAt(chart, spec, event);
          if (href) { window.location.assign(href); }
        };
        options.options.onHover = function (event, elements) {
          canvas.style.cursor = elements.length ? "pointer" : "default";
        };
      }
      drawn.push(new window.Chart(canvas, options));
      canvas.setAttribute("data-drawn", "true");
    });
  }
  drawAll();
  document.querySelectorAll("canvas[data-chart]").forEach(function (canvas) {
    var table = canvas.closest(".chart-card").querySelector("details.chart-table");
    if (table) { table.open = false; }
  });
  document.addEventListener("sightline:display", drawAll);
  if (window.matchMedia) {
    var dark = window.matchMedia("(prefers-color-scheme: dark)");
    if (dark.addEventListener) { dark.addEventListener("change", drawAll); }
  }
})();
