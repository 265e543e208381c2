// Charts (uPlot): <div class="chart" data-chart='{"x": [...], "series": [{"label": "Dead",
// "color": "dead", "values": [...]}]}'> draws a line per series against time (seconds
// since the epoch, shown in UTC). A series' color names a CSS variable of console.css, so
// the chart follows the light and dark themes; it is drawn again when the theme changes
// and resized with its container. A chart swapped out by a live refresh is destroyed.
(function () {
  "use strict";

  var HEIGHT = 200;
  var COUNTS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1e3, 2e3, 5e3, 1e4, 2e4, 5e4, 1e5, 2e5, 5e5, 1e6];
  var drawn = [];

  function css(name) {
    return getComputedStyle(document.documentElement).getPropertyValue("--" + name).trim() || "#888";
  }

  function axis(extra) {
    var base = {
      stroke: css("muted"),
      grid: { stroke: css("line"), width: 1 },
      ticks: { stroke: css("line"), width: 1 },
    };
    return Object.assign(base, extra);
  }

  function utc(ts) {
    return window.uPlot.tzDate(new Date(ts * 1e3), "Etc/UTC");
  }

  function hours(u, ticks) {
    var format = window.uPlot.fmtDate("{HH}:{mm}");
    return ticks.map(function (ts) { return format(utc(ts)); });
  }

  function options(spec, width) {
    var series = spec.series.map(function (one) {
      return { label: one.label, stroke: css(one.color), width: 2, points: { show: false } };
    });
    return {
      width: width,
      height: HEIGHT,
      tzDate: utc,
      scales: {
        x: { time: true },
        // Counts: from zero, and never a range of nothing when all are zero.
        y: { range: function (u, min, max) { return [0, Math.max(1, Math.ceil(max * 1.1))]; } },
      },
      axes: [axis({ values: hours }), axis({ incrs: COUNTS, size: 48 })],
      series: [{ label: "UTC", value: "{YYYY}-{MM}-{DD} {HH}:{mm}" }].concat(series),
    };
  }

  function widthOf(el) {
    return Math.max(200, Math.floor(el.clientWidth));
  }

  function draw(el) {
    if (!window.uPlot || drawn.some(function (one) { return one.el === el; })) {
      return;
    }
    var spec = JSON.parse(el.getAttribute("data-chart"));
    var data = [spec.x].concat(spec.series.map(function (one) { return one.values; }));
    var entry = { el: el, spec: spec, data: data, width: widthOf(el), plot: null, observer: null };
    entry.plot = new window.uPlot(options(spec, entry.width), data, el);
    // Resize in the next frame, not inside the observer, so the chart's own change of
    // size never loops back into the observer.
    entry.observer = new ResizeObserver(function () {
      window.requestAnimationFrame(function () { resize(entry); });
    });
    entry.observer.observe(el);
    drawn.push(entry);
  }

  function resize(entry) {
    var width = widthOf(entry.el);
    if (entry.plot && entry.el.isConnected && width !== entry.width) {
      entry.width = width;
      entry.plot.setSize({ width: width, height: HEIGHT });
    }
  }

  function forget(entry) {
    entry.observer.disconnect();
    entry.plot.destroy();
  }

  // Charts whose element left the page (a live refresh swapped it) are let go.
  function sweep() {
    drawn = drawn.filter(function (entry) {
      if (entry.el.isConnected) {
        return true;
      }
      forget(entry);
      return false;
    });
  }

  function redrawAll() {
    drawn.forEach(function (entry) {
      entry.plot.destroy();
      entry.width = widthOf(entry.el);
      entry.plot = new window.uPlot(options(entry.spec, entry.width), entry.data, entry.el);
    });
  }

  document.addEventListener("atp:mounted", function (event) {
    sweep();
    var root = event.target;
    if (root.matches && root.matches("[data-chart]")) {
      draw(root);
    }
    if (root.querySelectorAll) {
      root.querySelectorAll("[data-chart]").forEach(draw);
    }
  });

  if (window.matchMedia) {
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", redrawAll);
  }
})();
