// The backward walk page: step through data.steps, highlight the visited node, mark the edges
// its gradient flows along, show any node's forward value. No network, no libraries. Values
// that are not finite arrive as the strings "NaN", "inf", "-inf" (JSON has no such numbers).
// The URL fragment #step-6 opens step 6 and follows the walk.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("walk-data").textContent);
  var steps = data.steps;
  var svg = document.querySelector("#graph svg");
  var nodes = {};
  var edges = [];
  svg.querySelectorAll("g.node").forEach(function (g) {
    var id = g.querySelector("title").textContent.trim();
    g.setAttribute("data-id", id);
    nodes[id] = g;
  });
  svg.querySelectorAll("g.edge").forEach(function (g) {
    var ends = g.querySelector("title").textContent.split("->");
    g.setAttribute("data-from", ends[0].trim());
    g.setAttribute("data-to", ends[1].trim());
    edges.push(g);
  });
  // Graphviz puts each node's label in its <title> tooltip too: the page shows its own instead.
  svg.querySelectorAll("title").forEach(function (t) { t.textContent = ""; });

  var current = 0;
  var timer = null;
  var pinned = null;
  var byId = function (id) { return document.getElementById(id); };
  var text = function (id, value) { byId(id).textContent = value == null ? "" : value; };

  function badge(g, label) {
    var old = g.querySelector("text.badge");
    if (old) { old.remove(); }
    if (label == null) { return; }
    var box = g.getBBox();
    var t = document.createElementNS("http://www.w3.org/2000/svg", "text");
    t.setAttribute("class", "badge");
    t.setAttribute("x", box.x + box.width / 2);
    t.setAttribute("y", box.y + box.height + 12);
    t.setAttribute("text-anchor", "middle");
    t.textContent = "‖g‖=" + label;
    g.appendChild(t);
  }

  // A small array as a table with its row and column indices as headers (they stay in view
  // when the table scrolls), each cell tinted by its sign and size (red +, blue −).
  function values(id, shown, fallback) {
    var box = byId(id);
    box.textContent = "";
    if (!shown) { if (fallback) { box.textContent = fallback; } return; }
    if (shown.rows === null) {
      var pre = document.createElement("pre");
      pre.textContent = shown.text;
      box.appendChild(pre);
      return;
    }
    var largest = 0;
    shown.rows.forEach(function (row) {
      row.forEach(function (v) {
        if (typeof v === "number") { largest = Math.max(largest, Math.abs(v)); }
      });
    });
    var table = document.createElement("table");
    var head = table.createTHead().insertRow();
    head.appendChild(document.createElement("th"));
    shown.rows[0].forEach(function (v, j) {
      var th = document.createElement("th");
      th.scope = "col";
      th.textContent = j;
      head.appendChild(th);
    });
    var body = table.createTBody();
    shown.rows.forEach(function (row, i) {
      var tr = body.insertRow();
      var th = document.createElement("th");
      th.scope = "row";
      th.textContent = i;
      tr.appendChild(th);
      row.forEach(function (v) {
        var td = tr.insertCell();
        if (typeof v !== "number") {          // "NaN", "inf", "-inf": shown as they are
          td.textContent = v;
          td.className = "nonfinite";
          return;
        }
        td.textContent = v.toFixed(4).replace(/\.?0+$/, "") || "0";
        var alpha = largest > 0 ? 0.55 * Math.abs(v) / largest : 0;
        td.style.background = v >= 0 ? "rgba(192, 22, 27, " + alpha + ")" :
          "rgba(31, 95, 191, " + alpha + ")";
      });
    });
    box.appendChild(table);
  }

  function showForward(id) {
    var node = data.nodes[id];
    text("forward-name", node.name);
    text("forward-shape", node.what + " · " + node.shape);
    values("forward-values", node.values, node.summary);
  }

  function show(index) {
    current = Math.max(0, Math.min(steps.length - 1, index));
    var step = steps[current];
    steps.forEach(function (s, i) {
      var g = nodes[s.node];
      g.classList.toggle("visited", i < current);
      g.classList.toggle("current", i === current);
      badge(g, i <= current ? s.norm : null);
    });
    edges.forEach(function (g) {
      var flows = g.getAttribute("data-to") === step.node &&
        step.flow.indexOf(g.getAttribute("data-from")) >= 0;
      g.classList.toggle("flow", flows);
    });
    text("position", "Step " + (current + 1) + " of " + steps.length);
    text("step-title", step.title);
    text("step-shape", step.shape);
    text("grad-name", step.gradName);
    text("grad-norm", step.norm == null ? "none: no gradient reached it" : step.norm);
    values("grad-values", step.values, step.seed ? "" : null);
    if (step.seed) { byId("grad-values").textContent = "the seed: ∂J/∂J = 1"; }
    text("step-rule", step.rule);
    var passes = step.passes ? "passes the gradient on to: " + step.passes :
      (step.rule.indexOf("stored in") === 0 ? "" : "no input needs a gradient");
    if (step.passes && step.none) { passes += "; " + step.none + " needs none"; }
    text("step-passes", passes);
    var check = byId("check");
    check.hidden = !step.check;
    if (step.check) {
      text("check-label", step.check.label);
      text("check-compare", step.check.compare);
      values("check-values", step.check.values, null);
    }
    if (pinned === null) { showForward(step.node); }
    if (nodes[step.node].scrollIntoView) {    // a wide drawing scrolls to the node visited
      nodes[step.node].scrollIntoView({ block: "nearest", inline: "nearest" });
    }
    if (location.hash !== "#step-" + (current + 1)) {
      try { history.replaceState(null, "", "#step-" + (current + 1)); } catch (e) { /* file: */ }
    }
    byId("prev").disabled = current === 0;
    byId("next").disabled = current === steps.length - 1;
    if (current === steps.length - 1) { stop(); }
  }

  function stop() {
    if (timer !== null) { clearInterval(timer); timer = null; }
    text("play", "▶ Play");
  }
  function play() {
    if (timer !== null) { stop(); return; }
    if (current === steps.length - 1) { show(0); }
    text("play", "❚❚ Pause");
    timer = setInterval(function () { show(current + 1); }, 1500);
  }

  byId("next").addEventListener("click", function () { stop(); show(current + 1); });
  byId("prev").addEventListener("click", function () { stop(); show(current - 1); });
  byId("play").addEventListener("click", play);
  document.addEventListener("keydown", function (event) {
    if (event.altKey || event.ctrlKey || event.metaKey) { return; }
    var keys = { ArrowRight: 1, ArrowDown: 1, PageDown: 1, ArrowLeft: -1, ArrowUp: -1, PageUp: -1 };
    if (event.key in keys) { stop(); show(current + keys[event.key]); }
    else if (event.key === "Home") { stop(); show(0); }
    else if (event.key === "End") { stop(); show(steps.length - 1); }
    else if (event.key === " " && event.target.tagName !== "BUTTON") { play(); }
    else { return; }
    event.preventDefault();
  });

  var tooltip = byId("tooltip");
  Object.keys(nodes).forEach(function (id) {
    var g = nodes[id];
    g.addEventListener("mousemove", function (event) {
      var node = data.nodes[id];
      tooltip.textContent = node.name + " · " + node.what + " · " + node.shape + "\n" +
        node.summary;
      tooltip.hidden = false;
      tooltip.style.left = Math.min(event.clientX + 14, window.innerWidth - 300) + "px";
      tooltip.style.top = (event.clientY + 14) + "px";
    });
    g.addEventListener("mouseleave", function () { tooltip.hidden = true; });
    g.addEventListener("click", function () {
      if (pinned !== null) { nodes[pinned].classList.remove("pinned"); }
      pinned = pinned === id ? null : id;
      if (pinned !== null) { g.classList.add("pinned"); }
      showForward(pinned === null ? steps[current].node : id);
    });
  });
  // Labels shrink with the drawing: on a small or projected screen keep them at least 3/4 of
  // the page's type size and let the graph's box scroll instead.
  function fitGraph() {
    var box = svg.viewBox && svg.viewBox.baseVal;
    if (!box || !box.width) { return; }
    svg.style.width = "";
    svg.style.maxHeight = "";
    var wanted = 0.75 * parseFloat(getComputedStyle(document.documentElement).fontSize);
    var shown = data.fontSize * svg.getBoundingClientRect().width / box.width;
    if (shown < wanted) {
      svg.style.width = Math.ceil(box.width * wanted / data.fontSize) + "px";
      svg.style.maxHeight = "none";
    }
  }
  fitGraph();
  window.addEventListener("resize", fitGraph);

  function fromFragment() {
    var match = /^#step-(\d+)$/.exec(location.hash);
    return match ? parseInt(match[1], 10) - 1 : 0;
  }
  window.addEventListener("hashchange", function () { stop(); show(fromFragment()); });
  show(fromFragment());
}());
