/* openbill: the little the Data Docs pages ask of jQuery and bootstrap-table, so that the site
   works offline. Great Expectations links both from CDNs; expectations/offline.py replaces
   those links with this file and data_docs.css. It fills the index tables from the rows the
   page passes to bootstrapTable, makes a row with a link open it, and lets "Failed Only" /
   "Show All" hide and show sections. Filters, sorting and pagination are left out. */
(function () {
  "use strict";

  function Nodes(nodes) {
    this.nodes = nodes;
  }

  function $(arg) {
    if (typeof arg === "function") {
      if (document.readyState === "loading") {
        document.addEventListener("DOMContentLoaded", arg);
      } else {
        arg();
      }
      return new Nodes([]);
    }
    if (typeof arg === "string") {
      try {
        return new Nodes(Array.prototype.slice.call(document.querySelectorAll(arg)));
      } catch (e) {
        return new Nodes([]);
      }
    }
    if (arg && (arg.nodeType || arg === window)) {
      return new Nodes([arg]);
    }
    return new Nodes([]);
  }

  function each(nodes, fn) {
    nodes.nodes.forEach(fn);
    return nodes;
  }

  Nodes.prototype.ready = function (fn) {
    $(fn);
    return this;
  };
  Nodes.prototype.each = function (fn) {
    return each(this, function (el, i) {
      fn.call(el, i, el);
    });
  };
  Nodes.prototype.parent = function () {
    var parents = [];
    this.nodes.forEach(function (el) {
      if (el.parentElement && parents.indexOf(el.parentElement) < 0) {
        parents.push(el.parentElement);
      }
    });
    return new Nodes(parents);
  };
  Nodes.prototype.show = Nodes.prototype.fadeIn = function () {
    return each(this, function (el) {
      el.style.display = "";
    });
  };
  Nodes.prototype.hide = Nodes.prototype.fadeOut = function () {
    return each(this, function (el) {
      el.style.display = "none";
    });
  };
  Nodes.prototype.data = function (key) {
    return this.nodes.length ? this.nodes[0].getAttribute("data-" + key) : undefined;
  };
  Nodes.prototype.on = function () {
    return this; // row clicks are wired by bootstrapTable below
  };
  Nodes.prototype.tooltip = Nodes.prototype.popover = Nodes.prototype.collapse = function () {
    return this;
  };
  Nodes.prototype.bootstrapTable = function (options) {
    if (options === null || typeof options !== "object") {
      return this; // 'clearFilterControl', 'resetSearch': nothing to reset
    }
    return each(this, function (table) {
      render(table, options);
    });
  };

  function text(value) {
    return value === null || value === undefined ? "" : String(value);
  }

  function render(table, options) {
    var columns = options.columns || [];
    var head = columns
      .map(function (column) {
        var th = document.createElement("th");
        th.textContent = text(column.title);
        return th.outerHTML;
      })
      .join("");
    var body = (options.data || [])
      .map(function (row) {
        var tr = document.createElement("tr");
        if (row._table_row_link_path) {
          tr.className = "clickable-row";
          tr.setAttribute("data-href", row._table_row_link_path);
        }
        // The cells are the HTML Great Expectations rendered (links, icons), as
        // bootstrap-table shows them.
        tr.innerHTML = columns
          .map(function (column) {
            return "<td>" + text(row[column.field]) + "</td>";
          })
          .join("");
        return tr.outerHTML;
      })
      .join("");
    table.innerHTML = "<thead><tr>" + head + "</tr></thead><tbody>" + body + "</tbody>";
    table.classList.add("openbill-table");
    table.addEventListener("click", function (event) {
      var row = event.target.closest("tr[data-href]");
      if (row && !event.target.closest("a")) {
        window.location.href = row.getAttribute("data-href");
      }
    });
  }

  window.$ = window.jQuery = $;
})();
