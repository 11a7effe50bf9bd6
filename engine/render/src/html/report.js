// Sorting, expanding, cross-highlighting and the tooltip that says where a number comes
// from. Plain DOM, no libraries, no requests.
(function () {
  "use strict";
  var tip = document.getElementById("tip");
  var scope = document.body.getAttribute("data-scope") || "";

  function tipFor(el) {
    var own = el.closest("[data-tip]");
    if (own) return own.getAttribute("data-tip");
    var td = el.closest("td");
    if (!td || !td.closest("table.data")) return null;
    var row = td.parentElement;
    var table = td.closest("table");
    var idx = Array.prototype.indexOf.call(row.children, td);
    var th = table.tHead.rows[0].children[idx];
    if (!th || !th.getAttribute("data-tip")) return null;
    return th.getAttribute("data-tip") + "\n" + scope;
  }

  document.addEventListener("mouseover", function (e) {
    var text = tipFor(e.target);
    if (!text) { tip.hidden = true; return; }
    tip.textContent = text;
    tip.hidden = false;
  });
  document.addEventListener("mousemove", function (e) {
    if (tip.hidden) return;
    var x = Math.min(e.clientX + 14, window.innerWidth - tip.offsetWidth - 8);
    var y = e.clientY + 16;
    if (y + tip.offsetHeight > window.innerHeight) y = e.clientY - tip.offsetHeight - 10;
    tip.style.left = x + "px";
    tip.style.top = y + "px";
  });
  document.addEventListener("mouseleave", function () { tip.hidden = true; });

  function sortTable(th) {
    var table = th.closest("table");
    var idx = Array.prototype.indexOf.call(th.parentElement.children, th);
    var numeric = th.getAttribute("data-numeric") === "true";
    var asc = th.getAttribute("aria-sort") !== "ascending";
    Array.prototype.forEach.call(th.parentElement.children, function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var groups = Array.prototype.slice.call(table.tBodies);
    function key(g) {
      var v = g.rows[0].children[idx].getAttribute("data-sort") || "";
      if (numeric) return v === "" ? null : parseFloat(v);
      return v;
    }
    groups.sort(function (a, b) {
      var x = key(a), y = key(b);
      if (x === y) return 0;
      if (x === null || x === "") return 1;
      if (y === null || y === "") return -1;
      var c = numeric ? x - y : String(x).localeCompare(String(y), document.documentElement.lang);
      return asc ? c : -c;
    });
    var foot = table.tFoot;
    groups.forEach(function (g) { table.insertBefore(g, foot); });
  }

  document.addEventListener("click", function (e) {
    var th = e.target.closest("th.sortable");
    if (th) { sortTable(th); return; }
    var toggle = e.target.closest("button.toggle");
    if (toggle) {
      var open = toggle.getAttribute("aria-expanded") !== "true";
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
      toggle.textContent = open ? "−" : "+";
      Array.prototype.forEach.call(toggle.closest("tbody").querySelectorAll("tr.child"), function (r) { r.hidden = !open; });
      return;
    }
    var f = e.target.closest("[data-filter]");
    if (f) {
      var name = f.getAttribute("data-filter"), value = f.getAttribute("data-value");
      if (document.body.hasAttribute("data-live")) {
        // Cross-filter: the same value again clears it.
        var url = new URL(window.location.href);
        if (url.searchParams.get(name) === value) url.searchParams.delete(name);
        else url.searchParams.set(name, value);
        window.location.href = url.toString();
        return;
      }
      // A static page cannot recompute: it marks the rows of the same value everywhere.
      var on = !f.closest("tr").classList.contains("highlight");
      document.querySelectorAll("tr.highlight").forEach(function (r) { r.classList.remove("highlight"); });
      if (on) {
        document.querySelectorAll('[data-filter="' + name + '"]').forEach(function (c) {
          if (c.getAttribute("data-value") === value) c.closest("tr").classList.add("highlight");
        });
      }
    }
  });
  document.addEventListener("change", function (e) {
    var picker = e.target.closest && e.target.closest("select[data-picker]");
    if (!picker) return;
    var url = new URL(window.location.href);
    if (picker.value) url.searchParams.set(picker.getAttribute("data-picker"), picker.value);
    else url.searchParams.delete(picker.getAttribute("data-picker"));
    window.location.href = url.toString();
  });
  // The slider: the period becomes the N whole months ending with the period's last month.
  var months = document.getElementById("months");
  if (months) {
    months.addEventListener("change", function () {
      var end = months.getAttribute("data-end").split("-").map(Number);
      var last = new Date(Date.UTC(end[0], end[1], 0));
      var first = new Date(Date.UTC(end[0], end[1] - Number(months.value), 1));
      var iso = function (d) { return d.toISOString().slice(0, 10); };
      var url = new URL(window.location.href);
      url.searchParams.set("from", iso(first));
      url.searchParams.set("to", iso(last));
      url.searchParams.delete("as_of");
      window.location.href = url.toString();
    });
  }
  var refresh = document.getElementById("refresh");
  if (refresh) {
    refresh.addEventListener("click", function () {
      var state = document.getElementById("refresh-state");
      refresh.disabled = true;
      state.textContent = "…";
      fetch(refresh.dataset.refresh, { method: "POST", credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (j) {
          (function poll() {
            fetch(refresh.dataset.jobs + encodeURIComponent(j.job), { credentials: "same-origin" })
              .then(function (r) { return r.json(); })
              .then(function (s) {
                state.textContent = s.progress + "% " + s.message;
                if (s.state === "running") setTimeout(poll, 500);
                else if (s.state === "done") window.location.reload();
                else refresh.disabled = false;
              });
          })();
        });
    });
  }
  document.addEventListener("keydown", function (e) {
    if (e.key === "Enter" && e.target.matches && e.target.matches("th.sortable")) sortTable(e.target);
  });
})();
