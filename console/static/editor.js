// The planner's map editor (/plans/{ref}/edit): the draft's blocks coloured by grid, grid
// outlines on top. Click selects a block, shift-click (or a click with "连选" ticked, on a
// phone) adds or removes one; the selection
// fills the forms' block fields (which can also be typed), the grid of the selection fills
// the split and merge forms, the move form offers only the grids the selection shares an
// edge with and previews itself (htmx) once it has blocks and a target. After an edit the server says "plan-changed" and the layers are read again.
// Every rule is the server's: this only selects and shows.
(function () {
  "use strict";
  var COLOURS = ["#6fa8dc", "#93c47d", "#f6b26b", "#c27ba0", "#8e7cc3", "#ffd966", "#76a5af", "#e06666",
                 "#b6d7a8", "#a4c2f4", "#d5a6bd", "#f9cb9c"];

  function init(el) {
    if (el.dataset.drawn || typeof L === "undefined") return;
    el.dataset.drawn = "1";
    var map = L.map(el, {attributionControl: false, zoomSnap: 0.25, zoomControl: false});
    L.control.zoom({zoomInTitle: "放大", zoomOutTitle: "缩小"}).addTo(map);  // Leaflet's own say "Zoom in"
    var st = {selected: [], blocks: {}, grids: {}, colour: {}, blockLayer: null, gridLayer: null, fitted: false};

    function style(p) {
      var on = st.selected.indexOf(p.block) >= 0;
      return {color: on ? "#b42318" : "#52606d", weight: on ? 2.5 : 0.6, fillColor: st.colour[p.grid] || "#ccc",
              fillOpacity: on ? 0.75 : 0.45};
    }
    function gridOfSelection() {
      var g = null;
      for (var i = 0; i < st.selected.length; i++) {
        var b = st.blocks[st.selected[i]];
        if (!b) continue;
        if (g === null) g = b.feature.properties.grid;
        else if (g !== b.feature.properties.grid) return "";
      }
      return g;
    }
    function nearSelection() {
      // the grids sharing an edge with a selected block (the server's "near" of each block)
      if (!st.selected.length) return null;
      var near = {};
      st.selected.forEach(function (id) {
        var l = st.blocks[id];
        ((l && l.feature.properties.near) || []).forEach(function (c) { near[c] = true; });
      });
      return near;
    }
    function fillChoices(village) {
      var codes = Object.keys(st.grids).sort(), near = nearSelection();
      document.querySelectorAll("select[data-grid-choice], select[data-selection-grid]").forEach(function (s) {
        var keep = s.value, html = ['<option value="">（请选择）</option>'];
        codes.forEach(function (c) {
          var p = st.grids[c];
          if (village && s.hasAttribute("data-grid-choice") && p.village_code !== village) return;
          if (near && s.hasAttribute("data-adjacent") && !near[c]) return;
          html.push('<option value="' + c + '">' + c + " " + (p.name || "").replace(/[<&"]/g, "") + "</option>");
        });
        s.innerHTML = html.join("");
        if (st.grids[keep]) s.value = keep;
      });
    }
    function sync(preview) {
      var ids = st.selected.slice().sort(function (a, b) { return a - b; });
      document.querySelectorAll("input[data-selection]").forEach(function (i) { i.value = ids.join(","); });
      var g = gridOfSelection(), info = document.getElementById("selection");
      var village = g && st.grids[g] ? st.grids[g].village_code : null;
      fillChoices(village);
      document.querySelectorAll("[data-selection-grid]").forEach(function (i) { if (g) i.value = g; });
      if (info) info.textContent = ids.length ? "已选 " + ids.length + " 个图斑（" + (g ? "网格 " + g : "跨多个网格") + "）：" +
        ids.slice(0, 12).join(", ") + (ids.length > 12 ? " …" : "") : "未选取图斑";
      if (st.blockLayer) st.blockLayer.eachLayer(function (l) { l.setStyle(style(l.feature.properties)); });
      var move = document.getElementById("move-form");
      if (preview && move && ids.length && move.elements.to_grid.value && typeof htmx !== "undefined")
        htmx.trigger(move, "gg-preview");
    }
    function pick(id, add) {
      var multi = document.getElementById("multi-select");
      add = add || (multi && multi.checked);
      var at = st.selected.indexOf(id);
      if (add) { if (at >= 0) st.selected.splice(at, 1); else st.selected.push(id); }
      else st.selected = at >= 0 && st.selected.length === 1 ? [] : [id];
      sync(true);
    }
    function draw(data) {
      if (st.blockLayer) map.removeLayer(st.blockLayer);
      if (st.gridLayer) map.removeLayer(st.gridLayer);
      st.blocks = {}; st.grids = {}; st.colour = {};
      data.grids.features.forEach(function (f, i) {
        st.grids[f.properties.code] = f.properties;
        st.colour[f.properties.code] = COLOURS[i % COLOURS.length];
      });
      st.blockLayer = L.geoJSON(data.blocks, {
        style: function (f) { return style(f.properties); },
        onEachFeature: function (f, l) {
          var p = f.properties;
          st.blocks[p.block] = l;
          l.bindTooltip("图斑 " + p.block + " · 网格 " + p.grid + " · " + p.households + " 户", {sticky: true});
          l.on("click", function (e) { pick(p.block, e.originalEvent && e.originalEvent.shiftKey); });
        }
      });
      st.gridLayer = L.geoJSON(data.grids, {style: {color: "#1d2939", weight: 3, fill: false}, interactive: false});
      if (!st.fitted && st.blockLayer.getBounds().isValid()) {
        map.fitBounds(st.blockLayer.getBounds().pad(0.05));
        st.fitted = true;
      }
      st.blockLayer.addTo(map);
      st.gridLayer.addTo(map);
      st.blockLayer.eachLayer(function (l) {
        var e = l.getElement && l.getElement();
        if (e) {
          e.setAttribute("data-block", l.feature.properties.block);
          e.setAttribute("data-grid", l.feature.properties.grid);
          // out of the tab order: thousands of blocks stood between the map and the forms
          // (the keyboard types block ids in the forms instead)
          e.setAttribute("tabindex", "-1");
        }
      });
      st.selected = st.selected.filter(function (id) { return st.blocks[id]; });
      el.setAttribute("data-loaded", String(Date.now()));
      sync(false);
    }
    function load(clear) {
      if (clear) st.selected = [];
      el.setAttribute("aria-busy", "true");  // the map is read again: dimmed until drawn
      fetch(el.dataset.layers, {credentials: "same-origin", headers: {Accept: "application/json"}})
        .then(function (r) { if (!r.ok) throw new Error(r.status); return r.json(); })
        .then(draw)
        .catch(function () { el.setAttribute("data-error", "1"); })
        .then(function () { el.removeAttribute("aria-busy"); });
    }
    document.body.addEventListener("plan-changed", function () { if (document.body.contains(el)) load(true); });
    document.querySelectorAll("input[data-selection]").forEach(function (i) {
      i.addEventListener("change", function () {
        st.selected = i.value.split(/[\s,，]+/).filter(Boolean).map(Number).filter(function (n) { return st.blocks[n]; });
        sync(true);
      });
    });
    var zoom = document.getElementById("zoom-selection");
    if (zoom) zoom.addEventListener("click", function () {
      var b = null;
      st.selected.forEach(function (id) { var l = st.blocks[id]; if (l) b = b ? b.extend(l.getBounds()) : l.getBounds(); });
      if (b) map.fitBounds(b.pad(5), {maxZoom: 17});
    });
    var clear = document.getElementById("clear-selection");
    if (clear) clear.addEventListener("click", function () { st.selected = []; sync(false); });
    var target = document.getElementById("move-to");
    if (target) target.addEventListener("change", function () { sync(true); });
    map.setView([28.45, 119.48], 12);
    load(false);
  }
  function all() { var el = document.getElementById("editor-map"); if (el) init(el); }
  document.addEventListener("DOMContentLoaded", all);
  document.addEventListener("htmx:load", all);
  window.addEventListener("load", all);
})();
