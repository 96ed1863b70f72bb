/* The report's own script: it draws the interactive charts with plotly.js and
   lets the reader compare any two implementations' code. The page's
   Content-Security-Policy admits it by its sha256; it reads nothing but the
   page's own JSON blocks and <template>s, and writes text nodes and clones of
   the page's own highlighted lines (no innerHTML, no eval). */
(function () {
  "use strict";

  var ROW_CLASSES = ["same", "changed", "only-left", "only-right"];

  function json(id) {
    return JSON.parse(document.getElementById(id).textContent);
  }

  function each(nodes, action) {
    Array.prototype.forEach.call(nodes, action);
  }

  function drawCharts() {
    if (typeof Plotly === "undefined") {
      return;
    }
    var config = {displaylogo: false, responsive: true, modeBarButtonsToRemove: ["select2d", "lasso2d"]};
    each(document.querySelectorAll("div.plotly-chart"), function (div) {
      var figure = json(div.getAttribute("data-figure"));
      Plotly.newPlot(div, figure.data, figure.layout, config);
    });
  }

  /* Runs [kind, first left, first right, count] back to rows [left, right, kind]; `swap` mirrors them. */
  function expand(runs, swap) {
    var rows = [];
    runs.forEach(function (run) {
      for (var offset = 0; offset < run[3]; offset++) {
        var left = run[1] < 0 ? -1 : run[1] + offset;
        var right = run[2] < 0 ? -1 : run[2] + offset;
        var kind = run[0];
        if (swap) {
          rows.push([right, left, kind === 2 ? 3 : kind === 3 ? 2 : kind]);
        } else {
          rows.push([left, right, kind]);
        }
      }
    });
    return rows;
  }

  function setUpComparison(block) {
    var pairs = json(block.getAttribute("data-alignments")).pairs;
    var workload = block.getAttribute("data-workload");
    var pickLeft = block.querySelector("select.code-left");
    var pickRight = block.querySelector("select.code-right");
    var body = block.querySelector("table.diff tbody");

    function source(module) {
      var template = document.getElementById("source-" + workload + "-" + module);
      return {
        first: Number(template.getAttribute("data-first-line")),
        lines: template.content.querySelectorAll("li"),
        caption: template.content.querySelector(".code-caption")
      };
    }

    function rowsOf(left, right, count) {
      if (left === right) {
        var same = [];
        for (var index = 0; index < count; index++) {
          same.push([index, index, 0]);
        }
        return same;
      }
      var key = left + "|" + right;
      return key in pairs ? expand(pairs[key], false) : expand(pairs[right + "|" + left], true);
    }

    function cells(row, shown, index, side) {
      var number = document.createElement("td");
      var code = document.createElement("td");
      number.className = "ln " + side;
      code.className = "src " + side;
      if (index >= 0) {
        number.textContent = String(shown.first + index);
        each(shown.lines[index].childNodes, function (node) { code.appendChild(node.cloneNode(true)); });
      }
      row.appendChild(number);
      row.appendChild(code);
    }

    function draw() {
      var left = source(pickLeft.value);
      var right = source(pickRight.value);
      var rows = rowsOf(pickLeft.value, pickRight.value, left.lines.length);
      var fragment = document.createDocumentFragment();
      var differ = 0;
      rows.forEach(function (aligned) {
        var row = document.createElement("tr");
        row.className = ROW_CLASSES[aligned[2]];
        differ += aligned[2] === 0 ? 0 : 1;
        cells(row, left, aligned[0], "left");
        cells(row, right, aligned[1], "right");
        fragment.appendChild(row);
      });
      body.replaceChildren(fragment);
      block.querySelector("th.left-caption").replaceChildren(left.caption.cloneNode(true));
      block.querySelector("th.right-caption").replaceChildren(right.caption.cloneNode(true));
      block.querySelector(".diff-summary").textContent =
        differ + " of " + rows.length + " rows differ between " + pickLeft.value + " and " + pickRight.value + ".";
      block.setAttribute("data-shown", pickLeft.value + "|" + pickRight.value);
    }

    pickLeft.addEventListener("change", draw);
    pickRight.addEventListener("change", draw);
    block.querySelector(".code-pickers").hidden = false;
  }

  each(document.querySelectorAll("div.code-compare[data-alignments]"), setUpComparison);
  drawCharts();
})();
