// The console's maps: an event's point inside its grid on its ground (the store's roads and
// rivers, from /maps/ground, drawn by the maps' own GG.lines of gridgeo-maps.js), a grid
// worker's grids and events. Leaflet is the copy the maps vendor (served at
// /maps/assets/leaflet/); no base map is loaded, so nothing is requested off the machine.
// Runs on load and after every htmx swap.
(function () {
  "use strict";
  function draw(el) {
    if (el.dataset.drawn || typeof L === "undefined") return;
    el.dataset.drawn = "1";
    var map = L.map(el, {attributionControl: false, zoomSnap: 0.25, zoomControl: false});
    L.control.zoom({zoomInTitle: "放大", zoomOutTitle: "缩小"}).addTo(map);  // Leaflet's titles are English
    var bounds = null, layers = [];
    var grid = JSON.parse(el.dataset.grid || "null");
    if (grid) {
      var layer = L.geoJSON(grid, {
        style: {color: "#1d4f91", weight: 2, fillColor: "#6fa8dc", fillOpacity: 0.15},
        onEachFeature: function (f, l) {
          if (f.properties && f.properties.name) l.bindTooltip(f.properties.name + "（" + f.properties.code + "）");
        }
      });
      layers.push(layer);
      bounds = layer.getBounds();
    }
    var point = JSON.parse(el.dataset.point || "null");
    if (point) {
      var ll = [point.lat, point.lon];
      layers.push(L.circleMarker(ll, {radius: 8, color: "#b42318", weight: 3, fillColor: "#f04438",
                                      fillOpacity: 0.9, pane: "markerPane"}).bindTooltip("事件位置"));
      bounds = bounds ? bounds.extend(ll) : L.latLngBounds([ll, ll]);
    }
    var events = JSON.parse(el.dataset.events || "null");
    if (events) {
      events.forEach(function (e) {
        var m = L.circleMarker([e[1], e[2]], {radius: 5, color: e[3] ? "#b42318" : "#a15c07", weight: 2,
                                               fillOpacity: 0.7});
        m.bindTooltip(e[0]);
        m.on("click", function () { window.location.href = "/events/" + encodeURIComponent(e[0]); });
        layers.push(m);
      });
    }
    // The view first: Leaflet draws a vector layer only on a map that has one.
    if (bounds && bounds.isValid()) map.fitBounds(bounds.pad(0.15), {maxZoom: 17});
    else map.setView([28.45, 119.48], 12);
    layers.forEach(function (l) { l.addTo(map); });
    if (el.dataset.ground && window.GG && GG.lines) ground(map, el);
  }
  // Roads and rivers under the grid, as the maps draw them; a layer control switches them.
  function ground(map, el) {
    fetch("/maps/ground?bbox=" + encodeURIComponent(el.dataset.ground), {credentials: "same-origin"})
      .then(function (r) { return r.ok ? r.json() : null; })
      .then(function (g) {
        if (!g) return;
        var roads = GG.lines(g.roads).addTo(map), rivers = GG.lines(g.rivers).addTo(map);
        var control = L.control.layers(null, {"道路": roads, "河流": rivers}, {collapsed: true}).addTo(map);
        var toggle = control.getContainer().querySelector(".leaflet-control-layers-toggle");
        if (toggle) toggle.title = "道路与河流图层";  // Leaflet's "Layers"
        el.setAttribute("data-ground-lines", String(g.roads.parts.length + g.rivers.parts.length));
      })
      .catch(function () { /* the map without its ground */ });
  }
  // A form marked data-once (a long piece of work: make a draft, publish) turns its button off
  // once sent, saying so, so that a second click does not do the work twice.
  document.addEventListener("submit", function (e) {
    var form = e.target;
    if (!form.hasAttribute || !form.hasAttribute("data-once")) return;
    setTimeout(function () {
      form.querySelectorAll("button[type=submit]").forEach(function (b) {
        b.disabled = true;
        if (form.dataset.once) b.textContent = form.dataset.once;
      });
    }, 0);
  });
  function all() { document.querySelectorAll("div.map[data-grid]").forEach(draw); }
  document.addEventListener("DOMContentLoaded", all);
  document.addEventListener("htmx:load", all);
  window.addEventListener("load", all);
})();
