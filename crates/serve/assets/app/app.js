// streamprep's one script: live updates over EventSource, charts with uPlot. Everything a
// sensor or a user typed is shown with textContent (never innerHTML), so it stays text.
"use strict";
(function () {
  var page = document.body.getAttribute("data-page");

  function $(sel, root) { return (root || document).querySelector(sel); }
  function $$(sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function num(x, d) {
    return (typeof x === "number" && isFinite(x)) ? x.toFixed(d) : "-";
  }
  function setText(root, field, text) {
    var e = root.querySelector('[data-f="' + field + '"]');
    if (e && e.textContent !== text) e.textContent = text;
    return e;
  }
  function cssVar(name) {
    return getComputedStyle(document.documentElement).getPropertyValue(name).trim() || "#888";
  }
  var palette = ["--s1", "--s2", "--s3", "--s4", "--s5", "--s6"];
  function colour(i) { return cssVar(palette[i % palette.length]); }
  function axes() {
    var fg = cssVar("--muted"), grid = cssVar("--line");
    return [
      { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid } },
      { stroke: fg, grid: { stroke: grid, width: 1 }, ticks: { stroke: grid }, size: 60 }
    ];
  }
  function widthOf(node) { return Math.max(200, Math.floor(node.clientWidth || 600)); }
  function showActive(root, active) {
    $$("[data-show]", root).forEach(function (f) {
      f.hidden = (f.getAttribute("data-show") === "active") !== active;
    });
  }
  function isActive(state) {
    return state === "starting" || state === "running" || state === "stopping";
  }

  // ---- the overview: every project's line, live, with a sparkline of its rate
  function overview() {
    var sparks = {};
    var source = new EventSource("/stream/overview");
    source.addEventListener("projects", function (ev) {
      var lines = JSON.parse(ev.data);
      lines.forEach(function (l) {
        var row = null;
        $$("tr[data-id]").forEach(function (r) { if (r.getAttribute("data-id") === l.id) row = r; });
        if (!row) return;
        var st = setText(row, "state", l.state);
        if (st) st.setAttribute("data-state", l.state);
        ["method", "buffer", "workers", "rows_in", "rows_out", "rho", "dead_letters"].forEach(function (f) {
          setText(row, f, l[f]);
        });
        showActive(row, l.active);
        spark(row, l);
      });
    });
    function spark(row, l) {
      if (typeof uPlot === "undefined") return;
      var cell = row.querySelector('[data-f="spark"]');
      var s = sparks[l.id];
      if (!s) {
        s = sparks[l.id] = { t: [], v: [], plot: null };
      }
      var v = parseFloat(l.rows_in);
      s.t.push(Date.now() / 1000);
      s.v.push(isFinite(v) ? v : null);
      if (s.t.length > 60) { s.t.shift(); s.v.shift(); }
      if (!s.plot) {
        s.plot = new uPlot({
          width: 120, height: 30, pxAlign: false,
          legend: { show: false }, cursor: { show: false },
          scales: { x: { time: false }, y: { range: function (u, lo, hi) { return [0, Math.max(1, hi)]; } } },
          axes: [{ show: false }, { show: false }],
          series: [{}, { stroke: colour(0), width: 1.5, points: { show: false } }]
        }, [s.t, s.v], cell);
      } else {
        s.plot.setData([s.t, s.v]);
      }
    }
  }

  // ---- a project's page: figures, charts, dead letters, log
  function project() {
    var root = $("#project");
    var id = root.getAttribute("data-id");
    var windowSel = $("#window");
    var windowS = parseInt(windowSel.value, 10);
    var maxPoints = 2000;
    // the processed rows: time (s) and each numeric column's values
    var data = { t: [], cols: {}, order: [], chosen: [] };
    var latest = [];
    var dataPlot = null;
    // the capacity series, one point a second
    var cap = { t: [], arrival: [], rin: [], rout: [], dropped: [], rhoM: [], rhoP: [], p50: [], p99: [], mean: [], backlog: [], service: [] };
    // per stage: its mean service time (ms a message) at each point, by stage name
    var stageSeries = {}, stageNames = [];
    var lastDropped = null, lastT = null;
    var capPlots = {};
    // publish-to-chart latency of rows stamped by the simulator (sent_us), for the benchmark
    window.streamprepLatencies = [];

    function numericKeys(row) {
      return Object.keys(row).filter(function (k) { return typeof row[k] === "number"; });
    }

    function addRows(rows) {
      var now = Date.now();
      rows.forEach(function (r) {
        var row = r.row;
        if (!row || typeof row !== "object") return;
        numericKeys(row).forEach(function (k) {
          if (!Object.prototype.hasOwnProperty.call(data.cols, k)) {
            data.cols[k] = new Array(data.t.length).fill(null);
            data.order.push(k);
            if (data.chosen.length < 3 && k !== "sent_us") data.chosen.push(k);
            addColumnBox(k);
            dataPlot = destroy(dataPlot);
          }
        });
        data.t.push(r.t / 1000);
        data.order.forEach(function (k) {
          var v = row[k];
          data.cols[k].push(typeof v === "number" ? v : null);
        });
        latest.push(row);
      });
      // the window, and at most maxPoints
      var cutoff = now / 1000 - windowS;
      var drop = 0;
      while (drop < data.t.length && (data.t[drop] < cutoff || data.t.length - drop > maxPoints)) drop++;
      if (drop > 0) {
        data.t.splice(0, drop);
        data.order.forEach(function (k) { data.cols[k].splice(0, drop); });
      }
      if (latest.length > 10) latest.splice(0, latest.length - 10);
      drawData();
      var drawn = Date.now();
      rows.forEach(function (r) {
        var sent = r.row && r.row.sent_us;
        var us = typeof sent === "string" ? parseInt(sent, 10) : sent;
        if (typeof us === "number" && isFinite(us) && us > 0) {
          var lat = window.streamprepLatencies;
          lat.push(drawn - us / 1000);
          if (lat.length > 100000) lat.splice(0, lat.length - 100000);
        }
      });
      $("#points").textContent = String(data.t.length * data.chosen.length);
      showLatest();
    }

    function destroy(p) { if (p) p.destroy(); return null; }

    function addColumnBox(k) {
      var box = $("#columns");
      var waiting = box.querySelector(".muted");
      if (waiting) box.removeChild(waiting);
      var label = el("label");
      var input = document.createElement("input");
      input.type = "checkbox";
      input.value = k;
      input.checked = data.chosen.indexOf(k) >= 0;
      input.addEventListener("change", function () {
        data.chosen = $$("#columns input").filter(function (i) { return i.checked; }).map(function (i) { return i.value; });
        dataPlot = destroy(dataPlot);
        drawData();
      });
      label.appendChild(input);
      label.appendChild(document.createTextNode(" " + k));
      box.appendChild(label);
    }

    function drawData() {
      if (typeof uPlot === "undefined") return;
      var node = $("#chart-data");
      var series = [{}];
      var arrays = [data.t];
      data.chosen.forEach(function (k, i) {
        series.push({ label: k, stroke: colour(i), width: 1.5, spanGaps: false });
        arrays.push(data.cols[k]);
      });
      if (!dataPlot) {
        node.textContent = "";
        dataPlot = new uPlot({
          width: widthOf(node), height: 300,
          scales: { x: { time: true } },
          axes: axes(),
          series: series
        }, arrays, node);
        node.setAttribute("data-drawn", "1");
      } else {
        dataPlot.setData(arrays);
      }
      node.setAttribute("data-points", String(data.t.length));
    }

    // the inspector: the busiest keys of the last second (key names are the sensors': text only)
    function showBusiest(busiest) {
      var table = $("#busiest");
      if (!table || !busiest.length) return;
      var body = table.tBodies[0];
      body.textContent = "";
      busiest.forEach(function (b) {
        var tr = el("tr");
        tr.appendChild(el("td", b.key === "" ? "(no key)" : b.key));
        var rate = el("td", num(b.rows_per_s, 1)); rate.className = "num"; tr.appendChild(rate);
        var seen = el("td", num(b.last_seen_s, 2)); seen.className = "num"; tr.appendChild(seen);
        body.appendChild(tr);
      });
    }

    function showLatest() {
      var table = $("#latest");
      if (!latest.length) return;
      var keys = Object.keys(latest[latest.length - 1]);
      var head = table.tHead.rows[0];
      head.textContent = "";
      keys.forEach(function (k) { var th = el("th", k); th.scope = "col"; head.appendChild(th); });
      var body = table.tBodies[0];
      body.textContent = "";
      for (var i = latest.length - 1; i >= 0; i--) {
        var tr = el("tr");
        keys.forEach(function (k) {
          var v = latest[i][k];
          tr.appendChild(el("td", v === null || v === undefined ? "" : (typeof v === "object" ? JSON.stringify(v) : v)));
        });
        body.appendChild(tr);
      }
    }

    function capPlot(idNode, labels, arrays) {
      if (typeof uPlot === "undefined") return;
      var node = $(idNode);
      var p = capPlots[idNode];
      var all = [cap.t].concat(arrays);
      if (!p) {
        var series = [{}].concat(labels.map(function (l, i) { return { label: l, stroke: colour(i), width: 1.5 }; }));
        node.textContent = "";
        capPlots[idNode] = new uPlot({
          width: widthOf(node), height: 200, scales: { x: { time: true } }, axes: axes(), series: series
        }, all, node);
      } else {
        p.setData(all);
      }
    }

    function onView(v) {
      var f = v.live || {}, c = v.counts || {}, r = v.report || {};
      var state = typeof v.state === "string" ? v.state : (v.state && v.state.state) || "";
      if (v.state && typeof v.state === "object" && v.state.reason) state = "failed: " + v.state.reason;
      var st = $("#state");
      st.textContent = state;
      st.setAttribute("data-state", state);
      showActive(document, isActive(state));
      var fig = $("#figures");
      setText(fig, "rows_in", num(f.rows_in_per_s, 0));
      setText(fig, "rows_out", num(f.rows_out_per_s, 0));
      setText(fig, "rho", num(f.rho_measured, 3));
      setText(fig, "rho_predicted", num(f.rho_predicted, 3));
      setText(fig, "backlog", String(c.backlog));
      var lat = r.latency || {};
      setText(fig, "latency", num(lat.p50_us / 1000, 1) + " / " + num(lat.p99_us / 1000, 1) + " ms");
      setText(fig, "rows", c.rows_in + " / " + c.rows_out);
      setText(fig, "dead_letters", String(c.dead_letters));
      setText(fig, "dropped", String(c.dropped));
      setText(fig, "buffer", String(v.buffer));
      setText(fig, "workers", String(f.workers));
      var k = v.keys;
      setText(fig, "keys", k ? k.live + " / " + k.expired + " / " + k.evicted : "-");
      showBusiest(v.busiest || []);
      setText(fig, "links", (v.links || []).map(function (l) {
        return l.name + (l.connected ? " up" : " down") + (l.disconnects ? " (" + l.disconnects + " lost)" : "");
      }).join(", ") || "-");
      // the capacity charts
      var t = Date.now() / 1000;
      cap.t.push(t);
      cap.arrival.push(f.arrival_rows);
      cap.rin.push(f.rows_in_per_s);
      cap.rout.push(f.rows_out_per_s);
      var dropped = c.dropped || 0;
      cap.dropped.push(lastDropped === null ? 0 : Math.max(0, dropped - lastDropped) / Math.max(0.001, t - lastT));
      lastDropped = dropped; lastT = t;
      cap.rhoM.push(f.rho_measured);
      cap.rhoP.push(f.rho_predicted);
      cap.p50.push(lat.p50_us / 1000);
      cap.p99.push(lat.p99_us / 1000);
      cap.mean.push(f.latency_s * 1000);
      cap.backlog.push(c.backlog);
      cap.service.push(f.service_s * 1000);
      (r.stages || []).forEach(function (st) {
        var name = st[0];
        if (!Object.prototype.hasOwnProperty.call(stageSeries, name)) {
          stageSeries[name] = new Array(cap.t.length - 1).fill(null);
          stageNames.push(name);
          capPlots["#chart-stages"] = destroy(capPlots["#chart-stages"]);
        }
      });
      var means = {};
      (r.stages || []).forEach(function (st) { means[st[0]] = (st[1] || {}).mean_us / 1000; });
      stageNames.forEach(function (n) { stageSeries[n].push(Object.prototype.hasOwnProperty.call(means, n) ? means[n] : null); });
      var keep = windowS;
      if (cap.t.length > keep) {
        Object.keys(cap).forEach(function (k) { cap[k].splice(0, cap[k].length - keep); });
        stageNames.forEach(function (n) { stageSeries[n].splice(0, stageSeries[n].length - keep); });
      }
      capPlot("#chart-rates", ["arrival", "in", "out", "dropped"], [cap.arrival, cap.rin, cap.rout, cap.dropped]);
      capPlot("#chart-rho", ["measured", "predicted"], [cap.rhoM, cap.rhoP]);
      capPlot("#chart-latency", ["p50", "p99", "mean, last second"], [cap.p50, cap.p99, cap.mean]);
      capPlot("#chart-backlog", ["backlog"], [cap.backlog]);
      capPlot("#chart-stages", ["chain (last seconds)"].concat(stageNames), [cap.service].concat(stageNames.map(function (n) { return stageSeries[n]; })));
      // per step
      var body = $("#stages").tBodies[0];
      body.textContent = "";
      var rows = [["chain", r.chain]].concat(r.stages || []);
      rows.forEach(function (s) {
        var p = s[1] || {};
        var tr = el("tr");
        tr.appendChild(el("td", s[0]));
        tr.appendChild(el("td", num(p.mean_us / 1000, 3), "num"));
        tr.appendChild(el("td", num(p.p50_us / 1000, 3), "num"));
        tr.appendChild(el("td", num(p.p99_us / 1000, 3), "num"));
        body.appendChild(tr);
      });
    }

    function onLog(events) {
      var list = $("#log");
      events.forEach(function (e) {
        var ev = e.event || e;
        var text;
        if (ev.kind === "log" || ev.message !== undefined) text = ev.message;
        else if (ev.kind === "link" || ev.link !== undefined) text = ev.link + (ev.connected ? " connected" : " disconnected") + " (" + ev.disconnects + " lost so far)";
        else if (ev.kind === "dead_letter" || ev.reason !== undefined) text = "dead letter: message " + ev.seq + ", " + ev.step + ": " + ev.reason;
        else if (ev.state !== undefined) text = "state: " + ev.state + (ev.reason ? ": " + ev.reason : "");
        else text = JSON.stringify(ev);
        var li = el("li", new Date(e.at_ms).toISOString().slice(11, 23) + "  " + text);
        if (ev.level === "warn" || ev.level === "warning") li.className = "warn";
        list.insertBefore(li, list.firstChild);
      });
      while (list.children.length > 200) list.removeChild(list.lastChild);
    }

    function onDead(items) {
      var body = $("#dead").tBodies[0];
      body.textContent = "";
      items.slice().reverse().forEach(function (d) {
        var tr = el("tr");
        tr.appendChild(el("td", d.seq));
        tr.appendChild(el("td", d.step));
        tr.appendChild(el("td", d.rows, "num"));
        tr.appendChild(el("td", d.reason));
        body.appendChild(tr);
      });
    }

    var source = null;
    function connect() {
      if (source) source.close();
      source = new EventSource("/projects/" + encodeURIComponent(id) + "/stream?window=" + windowS + "&points=" + maxPoints);
      source.addEventListener("rows", function (ev) { addRows(JSON.parse(ev.data)); });
      source.addEventListener("view", function (ev) { onView(JSON.parse(ev.data)); });
      source.addEventListener("log", function (ev) { onLog(JSON.parse(ev.data)); });
      source.addEventListener("dead", function (ev) { onDead(JSON.parse(ev.data)); });
      source.addEventListener("idle", function () {
        var st = $("#state");
        if (!isActive(st.textContent)) return;
      });
    }
    windowSel.addEventListener("change", function () {
      windowS = parseInt(windowSel.value, 10);
      data.t = []; data.order.forEach(function (k) { data.cols[k] = []; });
      connect();
    });
    window.addEventListener("resize", function () {
      if (dataPlot) dataPlot.setSize({ width: widthOf($("#chart-data")), height: 300 });
      Object.keys(capPlots).forEach(function (k) { capPlots[k].setSize({ width: widthOf($(k)), height: 200 }); });
    });
    connect();
  }

  // ---- the project form: a hint of each chosen step's options, and more step slots
  function form() {
    function hint(select) {
      var opt = select.options[select.selectedIndex];
      var input = select.closest(".slot").querySelector(".step-options");
      var defaults = opt ? opt.getAttribute("data-options") : "";
      input.placeholder = defaults ? defaults : "no options";
    }
    $$(".step-choice").forEach(function (s) {
      hint(s);
      s.addEventListener("change", function () { hint(s); });
    });
    var add = $("#add-step");
    if (add) {
      add.hidden = false;
      add.addEventListener("click", function () {
        var slots = $("#slots");
        var last = slots.lastElementChild;
        var copy = last.cloneNode(true);
        var select = copy.querySelector("select");
        select.selectedIndex = 0;
        copy.querySelector(".step-options").value = "";
        var label = copy.querySelector("label");
        label.firstChild.textContent = "Step " + (slots.children.length + 1);
        select.addEventListener("change", function () { hint(select); });
        slots.appendChild(copy);
        hint(select);
        select.focus();
      });
    }
  }

  // ---- the history page: a job's progress, then its series; a span selected asks again
  function history() {
    var progress = $("#h-progress");
    var cancel = document.querySelector("form[action$='/cancel']");
    if (!progress) return;
    var id = progress.getAttribute("data-job");
    var node = $("#chart-history");
    var timeCol = ($("#h-time").value || "ts").trim();
    var columns = $("#h-columns").value.split(",").map(function (c) { return c.trim(); }).filter(Boolean);
    var plot = null, all = [], next = 0;
    function draw(rows) {
      if (typeof uPlot === "undefined") return;
      var xs = [], series = columns.map(function () { return []; });
      rows.forEach(function (r) {
        var t = Date.parse(String(r[timeCol]).replace(/Z?$/, "Z"));
        if (!isFinite(t)) return;
        xs.push(t / 1000);
        columns.forEach(function (c, i) { series[i].push(typeof r[c] === "number" ? r[c] : null); });
      });
      node.setAttribute("data-points", String(xs.length));
      if (plot) { plot.setData([xs].concat(series)); return; }
      node.textContent = "";
      var zoomed = false;
      plot = new uPlot({
        width: widthOf(node), height: 320, scales: { x: { time: true } }, axes: axes(),
        series: [{}].concat(columns.map(function (c, i) { return { label: c, stroke: colour(i), width: 1.5 }; })),
        hooks: { setSelect: [function (u) {
          if (zoomed || u.select.width < 2) return;
          zoomed = true;
          var from = u.posToVal(u.select.left, "x"), to = u.posToVal(u.select.left + u.select.width, "x");
          $("#h-from").value = new Date(from * 1000).toISOString();
          $("#h-to").value = new Date(to * 1000).toISOString();
          var f = $("#history-form");
          if (f.requestSubmit) f.requestSubmit(); else f.submit();
        }] }
      }, [xs].concat(series), node);
    }
    // the chart follows the page's width (a phone turned, a window narrowed)
    window.addEventListener("resize", function () {
      if (plot) plot.setSize({ width: widthOf(node), height: 320 });
    });
    function poll() {
      fetch("/api/v1/history/jobs/" + encodeURIComponent(id) + "?from_row=" + next, { credentials: "same-origin" })
        .then(function (r) { return r.json(); })
        .then(function (j) {
          progress.textContent = j.state + ": " + j.rows_read + " rows read, " + num(j.percent, 0) + "%, " +
            num(j.rows_per_s, 0) + " rows/s, " + num(j.seconds, 1) + " s";
          progress.setAttribute("data-state", j.state);
          // the rows so far (a resample's bins as they close), then the rest once done
          var fresh = j.rows || [];
          if (fresh.length) { all = all.concat(fresh); next += fresh.length; draw(all); }
          if (j.state === "waiting" || j.state === "running") setTimeout(poll, 300);
          // a job that has ended has nothing left to cancel
          else if (cancel) cancel.hidden = true;
        })
        .catch(function () { setTimeout(poll, 1000); });
    }
    poll();
  }

  if (page === "overview") overview();
  else if (page === "project") project();
  else if (page === "form") form();
  else if (page === "history") history();
})();
