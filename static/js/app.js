// EvalHub's small shared script: charts, live job progress, keyboard help. No framework; no network but our own API.
"use strict";

(function () {
  // Charts: <div class="chart" data-figure="ID"> + {{ fig|json_script:"ID" }}. plotly.js is loaded only by pages that chart.
  function drawCharts() {
    if (typeof window.Plotly === "undefined") return;
    document.querySelectorAll("[data-figure]").forEach(function (el) {
      var src = document.getElementById(el.dataset.figure);
      if (!src) return;
      var fig = JSON.parse(src.textContent);
      window.Plotly.newPlot(el, fig.data, fig.layout, { displaylogo: false, responsive: true });
      el.dataset.drawn = "1";
    });
  }

  function fmtEta(seconds) {
    if (seconds === null || seconds === undefined) return "";
    seconds = Math.round(seconds);
    if (seconds < 60) return "about " + seconds + " s left";
    var m = Math.round(seconds / 60);
    return "about " + m + " min left";
  }

  // Live progress: <div data-job-status-url="..."> containing .progress > span, [data-job-field=...]
  function pollJobs() {
    document.querySelectorAll("[data-job-status-url]").forEach(function (el) {
      if (el.dataset.finished === "1") return;
      fetch(el.dataset.jobStatusUrl, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (job) {
          if (!job) return;
          var bar = el.querySelector(".progress > span");
          if (bar) bar.style.width = (job.fraction * 100).toFixed(1) + "%";
          el.querySelectorAll("[data-job-field]").forEach(function (f) {
            var key = f.dataset.jobField, value = job[key];
            if (key === "eta_seconds") value = fmtEta(value);
            if (key === "steps") value = Math.round(job.progress_current) + " / " + Math.round(job.progress_total);
            if (key === "status") { f.className = "status status-" + job.status; }
            f.textContent = value === null || value === undefined ? "" : String(value);
          });
          if (["succeeded", "failed", "cancelled"].indexOf(job.status) >= 0) {
            el.dataset.finished = "1";
            if (el.dataset.reloadOnFinish === "1") window.location.reload();
          }
        })
        .catch(function () { /* transient; next tick retries */ });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    drawCharts();
    if (document.querySelector("[data-job-status-url]")) {
      pollJobs();
      window.setInterval(pollJobs, 2000);
    }
  });

  window.EvalHub = { drawCharts: drawCharts };
})();
