// Statistics graphs (Chart.js 4 from static/vendor/chart.umd.min.js) and the report's print button.
//
// Each <canvas data-chart="ID"> is drawn from the JSON in <script type="application/json" id="ID">:
// {"type": "line"|"bar"|"doughnut", "labels": [...], "values": [...], "series": "通数"}.
// The table beside each canvas holds the same figures and is the real content; the graph only
// illustrates it. Animation is off when the user prefers reduced motion.
(function () {
  "use strict";

  var PALETTE = ["#0b57d0", "#e37400", "#188038", "#a142f4", "#d93025", "#007b83", "#9aa0a6"];
  var reducedMotion = window.matchMedia ? window.matchMedia("(prefers-reduced-motion: reduce)") : null;
  var charts = [];

  function animation() {
    return reducedMotion && reducedMotion.matches ? false : { duration: 400 };
  }

  function readData(canvas) {
    var source = document.getElementById(canvas.getAttribute("data-chart"));
    if (!source) return null;
    try {
      return JSON.parse(source.textContent);
    } catch (error) {
      return null;
    }
  }

  function formatNumber(value) {
    return Number(value).toLocaleString(document.documentElement.lang || "ja");
  }

  function config(data) {
    var type = data.type || "bar";
    var round = type === "doughnut";
    var dataset = {
      label: data.series,
      data: data.values,
      backgroundColor: round ? PALETTE.slice(0, data.values.length) : "rgba(11, 87, 208, 0.75)",
      borderColor: round ? "#fff" : "#0b57d0",
      borderWidth: round ? 2 : 1,
    };
    if (type === "line") {
      dataset.backgroundColor = "rgba(11, 87, 208, 0.12)";
      dataset.fill = true;
      dataset.tension = 0.2;
      dataset.pointRadius = data.values.length > 62 ? 0 : 3;
    }
    var options = {
      responsive: true,
      maintainAspectRatio: false,
      animation: animation(),
      plugins: {
        legend: { display: round, position: "bottom" },
        tooltip: {
          callbacks: {
            label: function (item) {
              return (round ? item.label : item.dataset.label) + ": " + formatNumber(item.raw);
            },
          },
        },
      },
    };
    if (!round) {
      options.scales = {
        y: { beginAtZero: true, ticks: { precision: 0 } },
        x: { ticks: { autoSkip: true, maxRotation: 0 } },
      };
    }
    return { type: type, data: { labels: data.labels, datasets: [dataset] }, options: options };
  }

  function drawAll() {
    if (typeof window.Chart !== "function") return;
    // The page's own font, so Japanese labels do not fall back to a different typeface.
    window.Chart.defaults.font.family = window.getComputedStyle(document.body).fontFamily;
    window.Chart.defaults.color = "#1a1a1a";
    var canvases = document.querySelectorAll("canvas[data-chart]");
    for (var i = 0; i < canvases.length; i++) {
      var data = readData(canvases[i]);
      if (!data) continue;
      charts.push(new window.Chart(canvases[i], config(data)));
    }
  }

  function onMotionChange() {
    for (var i = 0; i < charts.length; i++) {
      charts[i].options.animation = animation();
      charts[i].update("none");
    }
  }

  function wirePrint() {
    var buttons = document.querySelectorAll("[data-print]");
    for (var i = 0; i < buttons.length; i++) {
      buttons[i].addEventListener("click", function () {
        window.print();
      });
    }
  }

  function start() {
    drawAll();
    wirePrint();
    if (reducedMotion) {
      if (reducedMotion.addEventListener) reducedMotion.addEventListener("change", onMotionChange);
      else if (reducedMotion.addListener) reducedMotion.addListener(onMotionChange);
    }
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
