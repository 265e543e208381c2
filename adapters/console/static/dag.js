// Workflow run graphs. An element with data-dag='{"nodes": [{"id", "label", "state",
// "detail", "href"?, "mark"?}], "edges": [[from, to]]}' becomes an SVG laid out by dagre:
// steps as rounded boxes coloured by state, parent-to-child edges with arrowheads. Every
// colour comes from classes in console.css (the Content-Security-Policy forbids inline
// styles). Each step is focusable and named by its <title>; one with a task links to it.
(function () {
  "use strict";

  var SVG = "http://www.w3.org/2000/svg";
  var HEIGHT = 46;
  var PAD = 12;
  var LABEL_CHAR = 8;   // px per character of the 13px bold label (a measure would need layout first)
  var SUB_CHAR = 6.5;   // px per character of the 11px state line
  var MAX_LABEL = 36;   // longer names are cut in the box; the <title> has them whole
  var NARROW = 640;     // below this width the graph runs top to bottom
  var graphs = 0;

  function make(name, attrs, parent) {
    var node = document.createElementNS(SVG, name);
    Object.keys(attrs).forEach(function (key) { node.setAttribute(key, attrs[key]); });
    if (parent) {
      parent.appendChild(node);
    }
    return node;
  }

  function text(name, attrs, content, parent) {
    var node = make(name, attrs, parent);
    node.textContent = content;
    return node;
  }

  function cut(label) {
    return label.length > MAX_LABEL ? label.slice(0, MAX_LABEL - 1) + "\u2026" : label;
  }

  // The box's second line: the state, and the compensation once it started.
  function subline(node) {
    var state = String(node.state || "").toLowerCase();
    var marks = {
      "compensation-ACTIVE": "compensating",
      "compensation-SUCCEEDED": "compensated",
      "compensation-FAILED": "compensation failed"
    };
    return node.mark && marks[node.mark] ? state + " \u00b7 " + marks[node.mark] : state;
  }

  function widthOf(node) {
    var label = cut(String(node.label || node.id)).length * LABEL_CHAR;
    return Math.ceil(Math.max(label, subline(node).length * SUB_CHAR, 60) + 2 * PAD);
  }

  function layout(data, narrow) {
    var g = new window.dagre.graphlib.Graph();
    g.setGraph({ rankdir: narrow ? "TB" : "LR", nodesep: 16, ranksep: 44, marginx: 6, marginy: 6 });
    g.setDefaultEdgeLabel(function () { return {}; });
    data.nodes.forEach(function (node) {
      g.setNode(String(node.id), { width: widthOf(node), height: HEIGHT, step: node });
    });
    (data.edges || []).forEach(function (edge) {
      if (g.hasNode(String(edge[0])) && g.hasNode(String(edge[1]))) {
        g.setEdge(String(edge[0]), String(edge[1]));
      }
    });
    window.dagre.layout(g);
    return g;
  }

  function arrowhead(svg, id) {
    var defs = make("defs", {}, svg);
    var marker = make("marker", {
      id: id, viewBox: "0 0 10 10", refX: "10", refY: "5",
      markerWidth: "7", markerHeight: "7", orient: "auto-start-reverse"
    }, defs);
    make("path", { d: "M 0 0 L 10 5 L 0 10 z", "class": "arrow" }, marker);
  }

  function drawEdges(svg, g, arrow) {
    var group = make("g", { "class": "edges", "aria-hidden": "true" }, svg);
    g.edges().forEach(function (e) {
      var points = g.edge(e).points || [];
      var d = points.map(function (p, i) { return (i ? "L " : "M ") + p.x + " " + p.y; }).join(" ");
      make("path", { d: d, "class": "edge", "marker-end": "url(#" + arrow + ")" }, group);
    });
  }

  function drawNode(parent, box) {
    var step = box.step;
    var classes = "node state-" + step.state + (step.mark ? " mark-" + step.mark : "");
    var x = box.x - box.width / 2;
    var y = box.y - box.height / 2;
    var attrs = { "class": classes, transform: "translate(" + x + "," + y + ")", "data-step": step.id };
    var node;
    if (step.href) {
      attrs.href = step.href;
      node = make("a", attrs, parent);
    } else {
      attrs.tabindex = "0";
      attrs.role = "img";
      node = make("g", attrs, parent);
    }
    var title = String(step.label || step.id) + " \u2014 " + subline(step) + (step.detail ? ": " + step.detail : "");
    text("title", {}, title, node);
    make("rect", { width: box.width, height: box.height, rx: "8", ry: "8" }, node);
    text("text", { x: PAD, y: "19", "class": "label" }, cut(String(step.label || step.id)), node);
    text("text", { x: PAD, y: "36", "class": "sub" }, subline(step), node);
  }

  function draw(el) {
    var data;
    try {
      data = JSON.parse(el.getAttribute("data-dag"));
    } catch (err) {
      return;
    }
    if (!window.dagre || !data || !Array.isArray(data.nodes) || !data.nodes.length) {
      return;
    }
    var g = layout(data, el.clientWidth > 0 && el.clientWidth < NARROW);
    var size = g.graph();
    graphs += 1;
    var arrow = "dag-arrow-" + graphs;
    var svg = make("svg", {
      width: Math.ceil(size.width), height: Math.ceil(size.height),
      viewBox: "0 0 " + Math.ceil(size.width) + " " + Math.ceil(size.height)
    });
    arrowhead(svg, arrow);
    drawEdges(svg, g, arrow);
    var nodes = make("g", { "class": "nodes" }, svg);
    g.nodes().forEach(function (id) { drawNode(nodes, g.node(id)); });
    el.replaceChildren(svg);
    el.setAttribute("data-dag-drawn", "");
  }

  // A live region swaps in a new graph element: draw every one not drawn yet.
  function drawAll() {
    document.querySelectorAll("[data-dag]:not([data-dag-drawn])").forEach(draw);
  }

  document.addEventListener("atp:mounted", drawAll);
  document.addEventListener("htmx:load", drawAll);
})();
