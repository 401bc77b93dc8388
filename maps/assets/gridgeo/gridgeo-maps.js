/*
 * gridgeo-maps.js: the client side of gridgeo's maps (MIT, part of gridgeo).
 *
 * The maps embed their data compactly (see maps/encoding.py): polygon rings and point
 * sequences as Google encoded polylines of rounded, delta-coded integers, attributes as
 * columns. This file turns them into Leaflet layers and adds the controls every map has
 * (search, legend, title) and the events map's time slider and platform filter.
 * Nothing here makes a network request.
 */
(function () {
  'use strict';

  var GG = (window.GG = {});

  // -- decoding ----------------------------------------------------------------------

  /* Read `count` zigzag varints (5-bit groups + 63, continuation 0x20) from s at pos. */
  function readInts(s, state, count, out) {
    var pos = state.pos;
    for (var k = 0; k < count; k++) {
      var result = 0, shift = 0, b;
      do {
        b = s.charCodeAt(pos++) - 63;
        result += (b & 0x1f) * Math.pow(2, shift);
        shift += 5;
      } while (b >= 0x20);
      out.push(result % 2 ? -(result + 1) / 2 : result / 2);
    }
    state.pos = pos;
    return out;
  }

  /* A delta-coded integer sequence back to its values. */
  GG.decodeSeries = function (s, n) {
    var deltas = readInts(s, { pos: 0 }, n, []);
    for (var i = 1; i < n; i++) deltas[i] += deltas[i - 1];
    return deltas;
  };

  /* The arcs of an encoded topology, each a [[lat, lon], ...] array (cached on t). */
  function topoArcs(t) {
    if (t._arcs) return t._arcs;
    var state = { pos: 0 }, arcs = new Array(t.arcLen.length), scale = t.scale;
    for (var a = 0; a < t.arcLen.length; a++) {
      var n = t.arcLen[a], vals = readInts(t.arcs, state, 2 * n, []), pts = new Array(n), lat = 0, lon = 0;
      for (var i = 0; i < n; i++) {
        lat += vals[2 * i];
        lon += vals[2 * i + 1];
        pts[i] = [lat / scale, lon / scale];
      }
      arcs[a] = pts;
    }
    return (t._arcs = arcs);
  }

  /*
   * Encoded topology (maps/encoding.py: encode_topology) -> latlngs per feature, for
   * features [from, to) (default all).
   */
  GG.decodeTopology = function (t, from, to) {
    var arcs = topoArcs(t), refs = t._refs || (t._refs = GG.decodeSeries(t.refs, t.nref));
    from = from || 0;
    to = to === undefined ? t.feat.length : to;
    var out = [], r = 0, p = 0, k = 0;
    for (var f = 0; f < to; f++) {
      if (f < from) { // skip: advance the counters only
        for (var q0 = 0; q0 < t.feat[f]; q0++, p++) {
          for (var j0 = 0; j0 < t.poly[p]; j0++, r++) k += t.ringArcs[r];
        }
        continue;
      }
      var polys = [];
      for (var q = 0; q < t.feat[f]; q++, p++) {
        var rings = [];
        for (var j = 0; j < t.poly[p]; j++, r++) {
          var ring = [];
          for (var m = 0; m < t.ringArcs[r]; m++, k++) {
            var id = Math.floor(refs[k] / 2), pts = arcs[id], n = pts.length, i;
            // each arc's first vertex is the previous arc's last one
            if (refs[k] % 2) { for (i = n - 1 - (m ? 1 : 0); i >= 0; i--) ring.push(pts[i]); }
            else { for (i = m ? 1 : 0; i < n; i++) ring.push(pts[i]); }
          }
          ring.pop(); // the closing vertex (Leaflet closes rings)
          rings.push(ring);
        }
        polys.push(rings);
      }
      out.push(polys);
    }
    return out;
  };

  /* The arcs numbered `ids` (e.g. a topology's mesh) as polyline parts. */
  GG.topologyArcs = function (t, ids) {
    var arcs = topoArcs(t);
    return ids.map(function (id) { return arcs[id]; });
  };

  /* Encoded points (one delta-coded lat/lon sequence) -> [[lat, lon], ...]. */
  GG.decodePoints = function (enc, n, scale) {
    var vals = readInts(enc, { pos: 0 }, 2 * n, []), out = new Array(n), lat = 0, lon = 0;
    for (var i = 0; i < n; i++) {
      lat += vals[2 * i];
      lon += vals[2 * i + 1];
      out[i] = [lat / scale, lon / scale];
    }
    return out;
  };

  // -- helpers -----------------------------------------------------------------------

  var ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
  function esc(v) {
    return String(v).replace(/[&<>"']/g, function (c) { return ESC[c]; });
  }
  GG.esc = esc;

  function fmt(v) {
    if (v === null || v === undefined || v === '' || (typeof v === 'number' && isNaN(v))) return '—';
    if (typeof v === 'number') {
      return Number.isInteger(v) ? v.toLocaleString('zh-CN') : v.toLocaleString('zh-CN', { maximumFractionDigits: 1 });
    }
    return esc(v);
  }
  GG.fmt = fmt;

  function table(rows) {
    var html = '<table class="gg-table">';
    for (var i = 0; i < rows.length; i++) {
      html += '<tr><th>' + esc(rows[i][0]) + '</th><td>' + rows[i][1] + '</td></tr>';
    }
    return html + '</table>';
  }

  /* The value of column `col` for feature i (columns may be coded through a lookup). */
  function cell(spec, col, i) {
    var v = spec.props[col][i];
    var lookup = spec.lookups && spec.lookups[col];
    return lookup ? lookup[v] : v;
  }

  // -- polygons ----------------------------------------------------------------------

  /*
   * Polygons from spec: {topo, range: [from, to] of the topology's features (default
   * all), props: {col: [...]}, lookups, cls: [...], styles: [...],
   * tooltip: [[col, label], ...], title: col, className, interactive, hover}.
   * Returns an L.FeatureGroup; group.gg = {spec, layers}.
   */
  GG.polygons = function (spec, sharedTopo) {
    if (sharedTopo) spec.topo = sharedTopo;
    var shapes = spec.range ? GG.decodeTopology(spec.topo, spec.range[0], spec.range[1]) : GG.decodeTopology(spec.topo);
    var group = L.featureGroup(), layers = new Array(shapes.length);
    var interactive = spec.interactive !== false;
    for (var i = 0; i < shapes.length; i++) {
      var style = L.extend({}, spec.styles[spec.cls ? spec.cls[i] : 0], {
        className: spec.className || '',
        interactive: interactive
      });
      var layer = L.polygon(shapes[i], style);
      layer.ggIndex = i;
      layer.ggStyle = style;
      if (interactive && spec.tooltip) {
        layer.bindTooltip(tooltipFor(spec, i), { sticky: true, direction: 'top', className: 'gg-tooltip' });
      }
      if (interactive && spec.hover !== false) {
        layer.on('mouseover', function (e) {
          e.target.setStyle({ weight: e.target.ggStyle.weight + 2 });
          if (!L.Browser.ie) e.target.bringToFront();
        });
        layer.on('mouseout', function (e) { e.target.setStyle({ weight: e.target.ggStyle.weight }); });
      }
      layers[i] = layer;
      group.addLayer(layer);
    }
    group.gg = { spec: spec, layers: layers };
    return group;
  };

  function tooltipFor(spec, i) {
    return function () {
      var rows = [];
      for (var k = 0; k < spec.tooltip.length; k++) {
        var col = spec.tooltip[k][0];
        rows.push([spec.tooltip[k][1], fmt(cell(spec, col, i))]);
      }
      var head = spec.title ? '<div class="gg-tooltip-title">' + esc(cell(spec, spec.title, i)) + '</div>' : '';
      return head + table(rows);
    };
  }

  /* Names at points: {enc, n, scale, names, minZoom, className}: from zoom minZoom on. */
  GG.labels = function (spec) {
    var cls = spec.className || 'gg-label';
    var group = new GG.ZoomGroup(function (g) {
      var pts = GG.decodePoints(spec.enc, spec.n, spec.scale);
      for (var i = 0; i < pts.length; i++) {
        g.addLayer(L.marker(pts[i], {
          icon: L.divIcon({ className: cls, html: '<span>' + esc(spec.names[i]) + '</span>', iconSize: null }),
          interactive: false,
          keyboard: false
        }));
      }
    }, spec.minZoom || 0);
    group.gg = { spec: spec };
    return group;
  };

  // -- the ground: roads, rivers, households -----------------------------------------

  /*
   * A layer group shown only from zoom `minZoom` on (and only while the layer control
   * has it on): its children are made by `build()` the first time they are needed.
   */
  GG.ZoomGroup = L.LayerGroup.extend({
    initialize: function (build, minZoom) {
      L.LayerGroup.prototype.initialize.call(this, []);
      this._build = build;
      this._minZoom = minZoom || 0;
      this._built = false;
    },
    onAdd: function (map) {
      this._map = map;
      map.on('zoomend', this._update, this);
      this._update();
    },
    onRemove: function (map) {
      map.off('zoomend', this._update, this);
      this.eachLayer(map.removeLayer, map);
      this._shown = false;
    },
    visible: function () { return !!this._shown; },
    _update: function () {
      var map = this._map, want = map.getZoom() >= this._minZoom;
      if (want && !this._built) {
        this._built = true;
        this._build(this);
      }
      if (want !== !!this._shown) {
        this._shown = want;
        if (want) this.eachLayer(map.addLayer, map);
        else this.eachLayer(map.removeLayer, map);
      }
      this.fire('gg:zoom', { zoom: map.getZoom() });
    },
    addLayer: function (layer) {
      var id = this.getLayerId(layer);
      this._layers[id] = layer;
      if (this._map && this._shown) this._map.addLayer(layer);
      return this;
    }
  });

  /* Decode encoded lines: {enc, n, scale, lens: vertices per part, parts: parts per feature}. */
  GG.decodeLines = function (spec) {
    var pts = GG.decodePoints(spec.enc, spec.n, spec.scale), out = [], k = 0, p = 0;
    for (var f = 0; f < spec.parts.length; f++) {
      var lines = [];
      for (var j = 0; j < spec.parts[f]; j++, p++) {
        lines.push(pts.slice(k, k + spec.lens[p]));
        k += spec.lens[p];
      }
      out.push(lines);
    }
    return out;
  };

  /*
   * Roads or rivers by rank: {enc, n, scale, lens, parts, cls: rank class per line,
   * styles: [{color, weight, minZoom, label}], names, className, refZoom}. Each line is
   * drawn at its class's weight at refZoom, thinner when zoomed out (halved per zoom
   * level, never under 0.6 px); a class appears from its minZoom. Drawn on a canvas.
   */
  /* The pane of the ground: over the grids' fill, letting the mouse through to them. */
  function groundPane(map) {
    var pane = map.getPane('ggGround');
    if (!pane) {
      pane = map.createPane('ggGround');
      pane.style.zIndex = 450;
      pane.style.pointerEvents = 'none';
    }
    return pane;
  }
  GG.groundPane = groundPane;

  GG.lines = function (spec) {
    var renderer = L.canvas({ padding: 0.3, pane: 'ggGround' }), shapes = GG.decodeLines(spec);
    var group = L.layerGroup(), byClass = spec.styles.map(function () { return []; });
    var ref = spec.refZoom || 16;
    shapes.forEach(function (latlngs, i) {
      var st = spec.styles[spec.cls[i]];
      var line = L.polyline(latlngs, { color: st.color, weight: st.weight, opacity: st.opacity || 0.9,
        lineCap: 'round', lineJoin: 'round', interactive: false, renderer: renderer, pane: 'ggGround',
        className: spec.className || '' });
      line.ggName = spec.names ? spec.names[i] : null;
      byClass[spec.cls[i]].push(line);
    });
    function restyle() {
      var map = group._map;
      if (!map) return;
      var z = map.getZoom();
      spec.styles.forEach(function (st, c) {
        var on = z >= (st.minZoom || 0), w = Math.max(0.6, Math.min(st.weight * 1.5, st.weight * Math.pow(2, (z - ref) / 2)));
        byClass[c].forEach(function (line) {
          if (on && !group.hasLayer(line)) group.addLayer(line);
          else if (!on && group.hasLayer(line)) group.removeLayer(line);
          if (on) line.setStyle({ weight: w });
        });
      });
    }
    group.onAdd = function (map) {
      groundPane(map);
      L.LayerGroup.prototype.onAdd.call(group, map);
      map.on('zoomend', restyle);
      restyle();
    };
    group.onRemove = function (map) {
      map.off('zoomend', restyle);
      L.LayerGroup.prototype.onRemove.call(group, map);
    };
    group.gg = { spec: spec, byClass: byClass, restyle: restyle };
    return group;
  };

  /* Points (households) from zoom spec.minZoom on, as small circles on a canvas. */
  GG.points = function (spec) {
    var group = new GG.ZoomGroup(function (g) {
      groundPane(g._map);
      var renderer = L.canvas({ padding: 0.3, pane: 'ggGround' }), pts = GG.decodePoints(spec.enc, spec.n, spec.scale);
      for (var i = 0; i < pts.length; i++) {
        g.addLayer(L.circleMarker(pts[i], L.extend({ renderer: renderer, interactive: false, pane: 'ggGround' }, spec.style)));
      }
    }, spec.minZoom);
    group.gg = { spec: spec };
    return group;
  };

  // -- controls ----------------------------------------------------------------------

  /* A title over the map (top centre). */
  GG.title = function (map, html) {
    var div = L.DomUtil.create('div', 'gg-title', map.getContainer());
    div.innerHTML = html;
    L.DomEvent.disableClickPropagation(div);
    L.DomEvent.disableScrollPropagation(div);
    return div;
  };

  /* A legend: {title, items: [[colour, label, border], ...], note, position}. */
  GG.legend = function (map, spec) {
    var ctl = L.control({ position: spec.position || 'bottomright' });
    ctl.onAdd = function () {
      var div = L.DomUtil.create('div', 'gg-legend leaflet-bar');
      var html = spec.title ? '<div class="gg-legend-title">' + esc(spec.title) + '</div>' : '';
      for (var i = 0; i < spec.items.length; i++) {
        var it = spec.items[i];
        html += '<div class="gg-legend-item"><i style="background:' + esc(it[0]) +
          (it[2] ? ';border:2px solid ' + esc(it[2]) : '') + '"></i>' + esc(it[1]) + '</div>';
      }
      if (spec.note) html += '<div class="gg-legend-note">' + esc(spec.note) + '</div>';
      div.innerHTML = html;
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      return div;
    };
    return ctl.addTo(map);
  };

  /*
   * Search by grid code, grid name or village name over polygon groups made by
   * GG.polygons whose spec has columns code, name and village.
   */
  GG.search = function (map, groups, opts) {
    opts = opts || {};
    var entries = [], villages = {};
    groups.forEach(function (group) {
      var spec = group.gg.spec;
      group.gg.layers.forEach(function (layer, i) {
        var code = String(cell(spec, 'code', i)), name = String(cell(spec, 'name', i));
        var village = spec.props.village ? String(cell(spec, 'village', i)) : '';
        entries.push({ kind: 'grid', label: code + ' ' + name, sub: village, key: (code + ' ' + name + ' ' + village).toLowerCase(), layer: layer, code: code });
        if (village) {
          var v = villages[village] || (villages[village] = { kind: 'village', label: village, sub: '', key: village.toLowerCase(), layers: [], bounds: L.latLngBounds([]) });
          v.layers.push(layer);
          v.bounds.extend(layer.getBounds());
        }
      });
    });
    Object.keys(villages).forEach(function (k) {
      var v = villages[k];
      v.sub = v.layers.length + ' 个网格';
      entries.push(v);
    });

    var ctl = L.control({ position: opts.position || 'topleft' });
    var flashing = [];
    function flash(layers) {
      flashing.forEach(function (l) { l.setStyle(l.ggStyle); });
      flashing = layers;
      layers.forEach(function (l) { l.setStyle({ color: '#00bcd4', weight: 4 }); l.bringToFront(); });
      setTimeout(function () {
        if (flashing === layers) { layers.forEach(function (l) { l.setStyle(l.ggStyle); }); flashing = []; }
      }, 4000);
    }
    function go(entry) {
      if (entry.kind === 'village') {
        map.fitBounds(entry.bounds, { maxZoom: 16 });
        flash(entry.layers);
      } else {
        map.fitBounds(entry.layer.getBounds(), { maxZoom: 17 });
        flash([entry.layer]);
        if (entry.layer.getTooltip()) entry.layer.openTooltip(entry.layer.getBounds().getCenter());
      }
      map.fire('gg:search', { entry: entry });
    }
    ctl.onAdd = function () {
      var div = L.DomUtil.create('div', 'gg-search leaflet-bar');
      var input = L.DomUtil.create('input', 'gg-search-input', div);
      input.type = 'search';
      input.placeholder = opts.placeholder || '搜索网格编码或村社名称';
      input.setAttribute('aria-label', input.placeholder);
      var list = L.DomUtil.create('ul', 'gg-search-results', div);
      var shown = [];
      function update() {
        var q = input.value.trim().toLowerCase();
        list.innerHTML = '';
        shown = [];
        if (!q) return;
        for (var i = 0; i < entries.length && shown.length < 12; i++) {
          if (entries[i].key.indexOf(q) >= 0) shown.push(entries[i]);
        }
        // villages before grids, exact code first
        shown.sort(function (a, b) {
          return (a.kind === 'village' ? 0 : 1) - (b.kind === 'village' ? 0 : 1) || (a.code === q ? -1 : 0) - (b.code === q ? -1 : 0);
        });
        if (!shown.length) {
          list.innerHTML = '<li class="gg-search-none">无匹配结果</li>';
          return;
        }
        shown.forEach(function (entry) {
          var li = L.DomUtil.create('li', 'gg-search-' + entry.kind, list);
          li.innerHTML = esc(entry.label) + (entry.sub ? ' <small>' + esc(entry.sub) + '</small>' : '');
          L.DomEvent.on(li, 'click', function () { go(entry); list.innerHTML = ''; input.value = entry.label; });
        });
      }
      L.DomEvent.on(input, 'input', update);
      L.DomEvent.on(input, 'keydown', function (e) {
        if (e.key === 'Enter' && shown.length) { go(shown[0]); list.innerHTML = ''; }
        if (e.key === 'Escape') { input.value = ''; list.innerHTML = ''; }
      });
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      return div;
    };
    ctl.find = function (text) {
      var q = String(text).toLowerCase();
      for (var i = 0; i < entries.length; i++) if (entries[i].key.indexOf(q) >= 0) { go(entries[i]); return entries[i]; }
      return null;
    };
    ctl.entries = entries;
    return ctl.addTo(map);
  };

  // -- events --------------------------------------------------------------------------

  /*
   * The events of a period: {pos, n, scale, t (encoded minutes after t0), t0 (ms),
   * p, s, c, g (indices into platforms, statuses, categories, grids), code, steps:
   * [[from, to, label], ...] in minutes, platforms/statuses: [[key, label, colour]],
   * categories: [names], period}. Returns an object the layers and the control share.
   */
  GG.events = function (spec) {
    var data = {
      spec: spec,
      latlngs: GG.decodePoints(spec.pos, spec.n, spec.scale),
      t: spec.n ? GG.decodeSeries(spec.t, spec.n) : [],
      step: 0, // 0: the whole period, k: spec.steps[k - 1]
      platforms: spec.platforms.map(function () { return true; }),
      sinks: [],
      selected: []
    };
    data.select = function () {
      var lo = -Infinity, hi = Infinity, out = [];
      if (data.step > 0) { lo = spec.steps[data.step - 1][0]; hi = spec.steps[data.step - 1][1]; }
      for (var i = 0; i < spec.n; i++) {
        if (data.t[i] >= lo && data.t[i] < hi && data.platforms[spec.p[i]]) out.push(i);
      }
      data.selected = out;
      data.sinks.forEach(function (f) { f(out); });
      return out;
    };
    return data;
  };

  function when(data, i) {
    var d = new Date(data.spec.t0 + data.t[i] * 60000 + 8 * 3600000); // shown in China Standard Time
    function two(x) { return (x < 10 ? '0' : '') + x; }
    return d.getUTCFullYear() + '-' + two(d.getUTCMonth() + 1) + '-' + two(d.getUTCDate()) + ' ' +
      two(d.getUTCHours()) + ':' + two(d.getUTCMinutes());
  }

  /* Clustered markers, fill by platform, ring by status. */
  GG.eventClusters = function (data) {
    var spec = data.spec;
    var group = L.markerClusterGroup({ chunkedLoading: true, maxClusterRadius: 60, showCoverageOnHover: false, spiderfyOnMaxZoom: true, disableClusteringAtZoom: 19 });
    var markers = new Array(spec.n);
    for (var i = 0; i < spec.n; i++) {
      var m = L.circleMarker(data.latlngs[i], {
        radius: 6, weight: 2.5, fillOpacity: 0.9,
        fillColor: spec.platforms[spec.p[i]][2], color: spec.statuses[spec.s[i]][2],
        className: 'gg-event'
      });
      m.ggIndex = i;
      m.bindPopup(popupFor(data, i), { className: 'gg-popup' });
      markers[i] = m;
    }
    data.markers = markers;
    data.sinks.push(function (sel) {
      group.clearLayers();
      group.addLayers(sel.map(function (i) { return markers[i]; }));
    });
    return group;
  };

  function popupFor(data, i) {
    return function () {
      var s = data.spec;
      return '<div class="gg-tooltip-title">' + esc(s.code[i]) + '</div>' + table([
        ['事项', esc(s.categories[s.c[i]])],
        ['平台', esc(s.platforms[s.p[i]][1])],
        ['状态', esc(s.statuses[s.s[i]][1])],
        ['上报时间', when(data, i)],
        ['网格', s.grids[s.g[i]] ? esc(s.grids[s.g[i]]) : '—']
      ]);
    };
  }

  /* A heat layer of the selected events. */
  GG.eventHeat = function (data, options) {
    var layer = L.heatLayer([], L.extend({ radius: 14, blur: 18, minOpacity: 0.25, maxZoom: 17 }, options || {}));
    data.sinks.push(function (sel) {
      layer.setLatLngs(sel.map(function (i) { return data.latlngs[i]; }));
    });
    return layer;
  };

  /* The time slider over the period's steps, a play button and platform switches. */
  GG.eventControl = function (map, data, opts) {
    opts = opts || {};
    var spec = data.spec, timer = null;
    var ctl = L.control({ position: opts.position || 'bottomleft' });
    ctl.onAdd = function () {
      var div = L.DomUtil.create('div', 'gg-timeline leaflet-bar');
      div.innerHTML =
        '<div class="gg-legend-title">事件 · ' + esc(spec.period) + '</div>' +
        '<div class="gg-time-row"><button type="button" class="gg-play" title="播放">▶</button>' +
        '<input type="range" class="gg-slider" min="0" max="' + spec.steps.length + '" step="1" value="0" aria-label="时间">' +
        '</div><div class="gg-time-label"></div><div class="gg-platforms"></div>' +
        '<div class="gg-statuses"></div>';
      var slider = div.querySelector('.gg-slider'), label = div.querySelector('.gg-time-label');
      var play = div.querySelector('.gg-play');
      function show() {
        data.step = +slider.value;
        var sel = data.select();
        var what = data.step === 0 ? '全部时段' : spec.steps[data.step - 1][2];
        label.textContent = what + ' · ' + sel.length.toLocaleString('zh-CN') + ' 件';
      }
      L.DomEvent.on(slider, 'input', show);
      L.DomEvent.on(play, 'click', function () {
        if (timer) { clearInterval(timer); timer = null; play.textContent = '▶'; return; }
        play.textContent = '❚❚';
        timer = setInterval(function () {
          slider.value = (+slider.value % spec.steps.length) + 1;
          show();
        }, opts.interval || 1500);
      });
      var pdiv = div.querySelector('.gg-platforms');
      spec.platforms.forEach(function (p, k) {
        var lab = L.DomUtil.create('label', 'gg-platform', pdiv);
        lab.innerHTML = '<input type="checkbox" checked> <i style="background:' + esc(p[2]) + '"></i>' + esc(p[1]);
        L.DomEvent.on(lab.querySelector('input'), 'change', function (e) {
          data.platforms[k] = e.target.checked;
          show();
        });
      });
      var sdiv = div.querySelector('.gg-statuses');
      sdiv.innerHTML = spec.statuses.map(function (s) {
        return '<span class="gg-status"><i style="border-color:' + esc(s[2]) + '"></i>' + esc(s[1]) + '</span>';
      }).join('');
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      ctl.slider = slider;
      ctl.show = show;
      show();
      return div;
    };
    ctl.setStep = function (k) { ctl.slider.value = k; ctl.show(); };
    return ctl.addTo(map);
  };

  // -- vector tiles (protomaps-leaflet) ------------------------------------------------

  /* Paint rules for the ground in vector tiles: layer `roads` (kind road|river, rank),
   * `villages` (outlines), `households` (points). spec.roads / spec.rivers: classes
   * [[label, ranks, colour, weight at zoom 16, first zoom], ...] (maps/ground.py). */
  function groundRules(P, spec, source) {
    function classOf(classes, rank) {
      for (var c = 0; c < classes.length - 1; c++) {
        if (classes[c][1].indexOf(rank) >= 0) return c;
      }
      return classes.length - 1;
    }
    function width(w) { return function (z) { return Math.max(0.6, w * Math.pow(1.25, Math.min(z, 18) - 16)); }; }
    var rules = [];
    if (spec.villageLines !== false) {
      rules.push({ dataSource: source, dataLayer: 'villages',
                   symbolizer: new P.LineSymbolizer({ color: '#7a6f62', width: 1.4, dash: [5, 3], opacity: 0.9 }) });
    }
    [['river', spec.rivers], ['road', spec.roads]].forEach(function (pair) {
      var kind = pair[0], classes = pair[1];
      classes.slice().reverse().forEach(function (cls) {
        var c = classes.indexOf(cls);
        rules.push({
          dataSource: source, dataLayer: 'roads', minzoom: cls[4],
          filter: function (z, f) {
            var isRiver = f.props.kind === 'river';
            return (kind === 'river') === isRiver && classOf(classes, f.props.rank || '') === c;
          },
          symbolizer: new P.LineSymbolizer({ color: cls[2], width: width(cls[3]), lineCap: 'round' })
        });
      });
    });
    if (spec.households) {
      rules.push({ dataSource: source, dataLayer: 'households', minzoom: 15,
                   symbolizer: new P.CircleSymbolizer({ radius: 1.8, fill: '#b08968', stroke: '#5b4636', width: 0.5 }) });
    }
    return rules;
  }
  GG.groundRules = groundRules;

  /* The offline vector base map: spec {url, maxDataZoom, attribution, roads, rivers, households}. */
  GG.vectorBase = function (spec) {
    var P = window.protomapsL;
    var layer = P.leafletLayer({
      url: spec.url, maxDataZoom: spec.maxDataZoom, attribution: spec.attribution,
      backgroundColor: '#f3efe6', paintRules: groundRules(P, spec),
      labelRules: [{ dataLayer: 'roads', minzoom: 14,
                     symbolizer: new P.LineLabelSymbolizer({ labelProps: ['name'], fill: '#5b4636',
                                                             font: '12px sans-serif', stroke: '#ffffff', width: 2 }) }]
    });
    layer.gg = { spec: spec };
    return layer;
  };

  /*
   * Grids from vector tiles (a province on one map): spec {url, cls: {code: class} for
   * the grids not in class `base`, base, styles: [{fillColor, fillOpacity, color}],
   * labels: [class label], ground: {url, roads, rivers} (roads and rivers from /tiles/roads),
   * villages: URL of the village tiles, prefix: draw only the grids whose code starts so}.
   * Colours come from the tiles' `code` attribute; a click shows the grid's attributes.
   */
  GG.tiledGrids = function (spec) {
    var P = window.protomapsL;
    // a light tile (zoomed out) has no attributes: the grid's 15-digit code is its feature id
    function codeOf(f) {
      if (f.props.code !== undefined) return String(f.props.code);
      var s = String(f.id);
      return s.length < 15 ? '000000000000000'.slice(s.length) + s : s;
    }
    function clsOf(f) {
      var code = codeOf(f);
      if (spec.prefix && code.indexOf(spec.prefix) !== 0) return -1;  // outside the map's villages
      var c = spec.cls[code];
      return c === undefined ? spec.base : c;
    }
    var sources = { grids: { url: spec.url, maxDataZoom: spec.maxDataZoom || 16 } };
    var rules = [];
    if (spec.ground) {
      sources.ground = { url: spec.ground.url, maxDataZoom: spec.maxDataZoom || 16 };
      rules = groundRules(P, L.extend({ villageLines: false }, spec.ground), 'ground');
    }
    if (spec.villages) {
      sources.villages = { url: spec.villages, maxDataZoom: spec.maxDataZoom || 16 };
      rules.push({ dataSource: 'villages', dataLayer: 'villages',
                   symbolizer: new P.LineSymbolizer({ color: '#222222', width: 2.2, opacity: 0.9 }) });
    }
    // one rule styled per feature, each feature's class worked out once (a province tile holds
    // tens of thousands of grids, drawn into several canvases); zoomed out, no outline
    function cls(f) { if (f.ggc === undefined) f.ggc = clsOf(f); return f.ggc; }
    function style(f) { return spec.styles[cls(f)]; }
    var gridRules = [{ dataSource: 'grids', dataLayer: 'grids', filter: function (z, f) { return cls(f) >= 0; },
                       symbolizer: new P.PolygonSymbolizer({
                         perFeature: true,
                         fill: function (z, f) { return style(f).fillColor; },
                         opacity: function (z, f) { return style(f).fillOpacity; },
                         stroke: function (z, f) { return style(f).color; },
                         width: function (z, f) { return z < 9 ? 0 : z < 12 ? 0.5 : style(f).weight || 0.8; } }) }];
    var layer = P.leafletLayer({ sources: sources, paintRules: gridRules.concat(rules), labelRules: [],
                                 attribution: spec.attribution || 'gridgeo' });
    layer.gg = { spec: spec, clsOf: clsOf };
    // drawn once the page's script has fitted the map to its grids: added at once, the layer
    // would first ask the tiles of Leaflet's opening view (zoom 0, a province in one tile)
    // (its view events too: Leaflet binds them when the layer is added, before the tiles exist)
    var onAdd = layer.onAdd, onRemove = layer.onRemove, getEvents = layer.getEvents;
    layer.getEvents = function () { return this._ggAdded ? getEvents.call(this) : {}; };
    layer.onAdd = function (map) {
      var self = this;
      setTimeout(function () {
        if (self._map !== map || self._ggAdded) return;
        self._ggAdded = true;
        onAdd.call(self, map);
        map.on(getEvents.call(self), self);
      }, 0);
      return this;
    };
    layer.onRemove = function (map) {
      if (!this._ggAdded) return this;
      map.off(getEvents.call(this), this);
      this._ggAdded = false;
      return onRemove.call(this, map);
    };
    layer.on('add', function () {
      var map = layer._map;
      layer._ggClick = function (e) {
        var hits = layer.queryTileFeaturesDebug(e.latlng.lng, e.latlng.lat, 4).get('grids') || [];
        var grid = hits.filter(function (h) { return h.layerName === 'grids'; })[0];
        if (!grid) return;
        var p = L.extend({ code: codeOf(grid.feature) }, grid.feature.props);
        var light = grid.feature.props.code === undefined;
        var rows = (spec.tooltip || []).filter(function (t) { return !light || t[0] === 'code'; })
          .map(function (t) { return [t[1], fmt(p[t[0]])]; });
        rows.push([spec.classTitle || '分类', esc(spec.labels[clsOf(grid.feature)])]);
        var title = '<div class="gg-tooltip-title">' + esc(p.name || p.code) + '</div>';
        var note = light ? '<div class="gg-note">放大后显示网格名称、户数和人口</div>' : '';
        var popup = L.popup({ className: 'gg-tooltip' }).setLatLng(e.latlng)
          .setContent(title + table(rows) + note).openOn(map);
        if (!spec.lookup) return;
        // the grid's village and staff, as the lookup API answers them for the point clicked
        // (only if it answers this grid: a map of another plan than the one in force is not)
        fetch(spec.lookup + '?lon=' + e.latlng.lng.toFixed(7) + '&lat=' + e.latlng.lat.toFixed(7),
              { credentials: 'same-origin', headers: { Accept: 'application/json' } })
          .then(function (r) { return r.ok ? r.json() : null; })
          .then(function (a) {
            if (!a || !a.grid || String(a.grid.code) !== String(p.code) || !popup.isOpen()) return;
            var s = a.staff || {}, name = function (x) { return x && x.name ? esc(x.name) : '—'; };
            var more = [['所属村社', a.village ? esc(a.village.name || a.village.code) : '—'],
                        ['网格长', name(s.grid_head)],
                        ['网格员', (s.workers || []).length ? s.workers.map(name).join('、') : '—'],
                        ['网格指导员', name(s.instructor)]];
            popup.setContent('<div class="gg-tooltip-title">' + esc(a.grid.name || p.code) + '</div>'
                             + table(rows.concat(more)) + note);
          })
          .catch(function () { /* the popup keeps what the tile said */ });
      };
      map.on('click', layer._ggClick);
    });
    layer.on('remove', function () { if (layer._map) layer._map.off('click', layer._ggClick); });
    return layer;
  };

})();
