// Draws each usage chart of the page from the JSON beside it (the Content-Security-Policy allows no inline script).
"use strict";

(function () {
  const palette = ["#2563eb", "#f59e0b", "#10b981", "#ef4444", "#8b5cf6", "#0891b2", "#db2777", "#65a30d"];

  function monthLabel(month) {
    const [year, number] = month.split("-").map(Number);
    return new Date(Date.UTC(year, number - 1, 1)).toLocaleString("en", { month: "short", year: "numeric", timeZone: "UTC" });
  }

  function draw(canvas) {
    const source = document.getElementById(canvas.dataset.usageChart);
    if (!source || typeof Chart === "undefined") {
      return;
    }
    const chart = JSON.parse(source.textContent);
    const datasets = chart.series.map(function (series, index) {
      return {
        label: series.label,
        // Exact decimal text from the server; the chart only needs it to scale bars.
        data: series.amounts.map(Number),
        units: series.units,
        unit: series.unit,
        productId: series.product_id,
        backgroundColor: palette[index % palette.length],
        stack: "usage",
      };
    });
    new Chart(canvas, {
      type: "bar",
      data: { labels: chart.months.map(monthLabel), months: chart.months, datasets: datasets },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: {
          x: { stacked: true },
          y: { stacked: true, beginAtZero: true, title: { display: true, text: chart.currency } },
        },
        plugins: {
          legend: { position: "bottom" },
          tooltip: {
            callbacks: {
              label: function (item) {
                const series = item.dataset;
                return series.label + ": " + series.units[item.dataIndex] + " " + series.unit + ", "
                  + chart.series[item.datasetIndex].amounts[item.dataIndex] + " " + chart.currency;
              },
            },
          },
        },
      },
    });
    canvas.dataset.drawn = "true";
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("canvas[data-usage-chart]").forEach(draw);
  });
})();
