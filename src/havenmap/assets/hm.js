/* havenmap's page library: builds every layer of a map from compact JSON with Leaflet.
 *
 * Python (havenmap.maps) emits one HM.call(fn, map, data) per layer piece. User text is
 * only ever placed with textContent (never parsed as HTML); the only markup set with
 * innerHTML is our own SVG swatches and icons, built in Python from fixed colours.
 */
(function () {
  "use strict";
  var HM = (window.HM = window.HM || {});
  HM.groups = {};   // layer key -> L.FeatureGroup
  HM.meta = {};     // layer key -> {key, name, section, show, legend, radio, base}
  HM.order = [];    // layer keys in declaration order
  HM.cells = {};    // defender cell id -> L.Polygon
  HM.movers = [];   // badges and alert icons placed by HM.declutter
  HM.map = null;
  var SECTIONS = ["Threat", "Safety", "Patrols"];

  // ------------------------------------------------------------------ helpers

  // Google polyline decoding (1e-5 degrees); one delta stream split into lines by counts.
  function decode(s, counts) {
    var out = new Array(counts.length), i = 0, lat = 0, lng = 0;
    function next() {
      var result = 0, shift = 0, b;
      do { b = s.charCodeAt(i++) - 63; result |= (b & 31) << shift; shift += 5; } while (b >= 32);
      return (result & 1) ? ~(result >> 1) : (result >> 1);
    }
    for (var c = 0; c < counts.length; c++) {
      var n = counts[c], line = new Array(n);
      for (var k = 0; k < n; k++) { lat += next(); lng += next(); line[k] = [lat / 1e5, lng / 1e5]; }
      out[c] = line;
    }
    return out;
  }
  HM.decode = decode;

  function el(tag, cls, parent, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (parent) parent.appendChild(e);
    return e;
  }

  // A tooltip/popup body: every line is set as textContent, so user text is never parsed as HTML.
  function box(lines) {
    var div = el("div", "hm-box");
    for (var i = 0; i < lines.length; i++) {
      if (lines[i] === null || lines[i] === undefined || lines[i] === "") continue;
      el("div", i === 0 ? "hm-head" : "", div, lines[i]);
    }
    return div;
  }
  HM.box = box;
  function tip(layer, lines, sticky) {
    layer.bindTooltip(function () { return box(lines); }, {sticky: !!sticky, className: "hm-tip"});
  }
  function pop(layer, lines) {
    layer.bindPopup(function () { return box(lines); }, {maxWidth: 340});
  }
  function rendererFor(d) {
    if (d.canvas) return L.canvas({pane: d.pane, padding: 0.3});
    return d.pane ? L.svg({pane: d.pane}) : null;
  }
  function polygonsOf(it) {
    var rings = decode(it.enc, it.counts), polys = [], r = 0;
    it.parts.forEach(function (k) { polys.push(rings.slice(r, r + k)); r += k; });
    return polys;
  }
  // Label point of a polygon: the inside point farthest from its edges among a 9 x 9 sample
  // of its bounding box (the centre for a square). Computed here from the drawn corners.
  function labelPoint(polys) {
    var rings = [].concat.apply([], polys), s = 90, w = 180, n = -90, e = -180;
    rings.forEach(function (ring) { ring.forEach(function (p) {
      s = Math.min(s, p[0]); n = Math.max(n, p[0]); w = Math.min(w, p[1]); e = Math.max(e, p[1]); }); });
    var k = Math.cos((s + n) / 2 * Math.PI / 180), best = null, bestD = -1;
    function inside(y, x) {
      var c = false;
      rings.forEach(function (ring) {
        for (var i = 0, j = ring.length - 1; i < ring.length; j = i++) {
          var yi = ring[i][0], xi = ring[i][1], yj = ring[j][0], xj = ring[j][1];
          if ((yi > y) !== (yj > y) && x < (xj - xi) * (y - yi) / (yj - yi) + xi) c = !c;
        }
      });
      return c;
    }
    function edgeDist(y, x) {
      var d = Infinity;
      rings.forEach(function (ring) {
        for (var i = 0, j = ring.length - 1; i < ring.length; j = i++)
          d = Math.min(d, segDist(x * k, y, ring[j][1] * k, ring[j][0], ring[i][1] * k, ring[i][0]));
      });
      return d;
    }
    for (var a = 0; a <= 8; a++) for (var b = 0; b <= 8; b++) {
      var y = s + (n - s) * (a + 0.5) / 9, x = w + (e - w) * (b + 0.5) / 9;
      if (a === 4 && b === 4) { y = (s + n) / 2; x = (w + e) / 2; }
      if (!inside(y, x)) continue;
      var dd = edgeDist(y, x);
      if (dd > bestD + 1e-12) { bestD = dd; best = [y, x]; }
    }
    return L.latLng(best || [(s + n) / 2, (w + e) / 2]);
  }
  function segDist(px, py, ax, ay, bx, by) {
    var dx = bx - ax, dy = by - ay, t = dx || dy ? ((px - ax) * dx + (py - ay) * dy) / (dx * dx + dy * dy) : 0;
    t = Math.max(0, Math.min(1, t));
    var qx = ax + t * dx - px, qy = ay + t * dy - py;
    return Math.sqrt(qx * qx + qy * qy);
  }
  HM.labelPoint = labelPoint;

  // A marker whose inner element HM.declutter may shift so it never hides under other symbols.
  function mover(latlng, inner, prio, cellBounds, first) {
    var m = L.marker(latlng, {icon: L.divIcon({className: "hm-anchor", html: inner, iconSize: [0, 0]}),
                              keyboard: false, interactive: true});
    HM.movers.push({marker: m, el: inner, prio: prio, cell: cellBounds, first: first || [0, 0]});
    return m;
  }

  // ------------------------------------------------------------------ layers

  HM.call = function (fn, map, d) {
    var target = d && d.layer && HM.groups[d.layer] ? HM.groups[d.layer] : map;
    return HM[fn](target, d, map);
  };

  HM.setup = function (map, d) {
    HM.map = map;
    d.panes.forEach(function (p) { map.createPane(p[0]).style.zIndex = p[1]; });
  };

  // Declare a layer: a feature group, its place in the layer control and its legend rows.
  HM.layer = function (map, d) {
    var g = L.featureGroup();
    g._hmKey = d.key;
    HM.groups[d.key] = g;
    HM.meta[d.key] = d;
    HM.order.push(d.key);
  };

  // Roads: one canvas polyline per tier, each drawn from its own zoom level; names on hover.
  HM.ZoomTiers = L.Layer.extend({
    initialize: function (layers, zooms, attribution) {
      this._tiers = layers; this._zooms = zooms;
      L.setOptions(this, {attribution: attribution});
    },
    getLayers: function () { return this._tiers.slice(); },
    onAdd: function (map) { map.on("zoomend", this._sync, this); this._sync(); },
    onRemove: function (map) {
      map.off("zoomend", this._sync, this);
      this._tiers.forEach(function (l) { if (map.hasLayer(l)) map.removeLayer(l); });
    },
    _sync: function () {
      var map = this._map, z = map.getZoom();
      for (var i = 0; i < this._tiers.length; i++) {
        var want = z >= this._zooms[i], has = map.hasLayer(this._tiers[i]);
        if (want && !has) map.addLayer(this._tiers[i]);
        else if (!want && has) map.removeLayer(this._tiers[i]);
      }
    }
  });
  HM.roads = function (group, d, map) {
    var renderer = L.canvas({pane: d.pane, padding: 0.3}), layers = [], zooms = [], index = new RoadIndex(d.names);
    d.tiers.forEach(function (t) {
      var lines = decode(t.enc, t.counts);
      layers.push(L.polyline(lines,
        L.extend({renderer: renderer, interactive: false, smoothFactor: 1.5, className: "hm-road"}, t.style)));
      zooms.push(t.minZoom);
      index.add(lines, t.names, t.minZoom);
    });
    group.addLayer(new HM.ZoomTiers(layers, zooms, d.attribution));
    HM.roadIndex = index;
    roadHover(map, group, index);
  };

  // Segments of named roads bucketed on a ~200 m grid, for the street name under the mouse.
  function RoadIndex(names) { this.names = names; this.cell = 0.002; this.buckets = {}; this.seg = []; }
  RoadIndex.prototype.add = function (lines, nameIdx, minZoom) {
    for (var i = 0; i < lines.length; i++) {
      var name = nameIdx[i];
      if (name < 0) continue;
      var line = lines[i];
      for (var j = 1; j < line.length; j++) {
        var a = line[j - 1], b = line[j], id = this.seg.length;
        this.seg.push([a[0], a[1], b[0], b[1], name, minZoom]);
        var y0 = Math.floor(Math.min(a[0], b[0]) / this.cell), y1 = Math.floor(Math.max(a[0], b[0]) / this.cell);
        var x0 = Math.floor(Math.min(a[1], b[1]) / this.cell), x1 = Math.floor(Math.max(a[1], b[1]) / this.cell);
        for (var y = y0; y <= y1; y++) for (var x = x0; x <= x1; x++) {
          var key = y + ":" + x;
          (this.buckets[key] = this.buckets[key] || []).push(id);
        }
      }
    }
  };
  // The name of the nearest drawn named road within tolDeg degrees (latitude) of ll, or null.
  RoadIndex.prototype.nearest = function (ll, tolDeg, zoom) {
    var k = Math.cos(ll.lat * Math.PI / 180), c = this.cell, best = null, bestD = tolDeg;
    var y0 = Math.floor((ll.lat - tolDeg) / c), y1 = Math.floor((ll.lat + tolDeg) / c);
    var x0 = Math.floor((ll.lng - tolDeg / k) / c), x1 = Math.floor((ll.lng + tolDeg / k) / c);
    if ((y1 - y0 + 1) * (x1 - x0 + 1) > 64) return null;  // zoomed far out: no names
    for (var y = y0; y <= y1; y++) for (var x = x0; x <= x1; x++) {
      var ids = this.buckets[y + ":" + x];
      if (!ids) continue;
      for (var i = 0; i < ids.length; i++) {
        var s = this.seg[ids[i]];
        if (zoom < s[5]) continue;
        var dist = segDist(ll.lng * k, ll.lat, s[1] * k, s[0], s[3] * k, s[2]);
        if (dist < bestD) { bestD = dist; best = s[4]; }
      }
    }
    return best === null ? null : this.names[best];
  };
  HM.roadName = function (lat, lng, px) {
    var map = HM.map, z = map.getZoom();
    var degPerPx = 360 / (256 * Math.pow(2, z));
    return HM.roadIndex ? HM.roadIndex.nearest(L.latLng(lat, lng), (px || 8) * degPerPx * Math.cos(lat * Math.PI / 180), z) : null;
  };
  function roadHover(map, group, index) {
    var tipLayer = L.tooltip({className: "hm-tip hm-road-tip", direction: "top", offset: [0, -10]});
    var pending = null, queued = false;
    map.on("mousemove", function (e) {
      pending = e;
      if (queued) return;
      queued = true;
      requestAnimationFrame(function () {
        var ev = pending;
        queued = false; pending = null;
        if (!ev) return;
        var target = ev.originalEvent && ev.originalEvent.target;
        var busy = target && target.closest && target.closest(".leaflet-interactive, .leaflet-marker-icon, .leaflet-control");
        var name = !busy && map.hasLayer(group) ? HM.roadName(ev.latlng.lat, ev.latlng.lng, 8) : null;
        if (name) {
          tipLayer.setLatLng(ev.latlng).setContent(box([name]));
          if (!map.hasLayer(tipLayer)) tipLayer.addTo(map);
        } else if (map.hasLayer(tipLayer)) map.removeLayer(tipLayer);
      });
    });
    map.on("mouseout", function () { if (map.hasLayer(tipLayer)) map.removeLayer(tipLayer); });
  }

  // Incident heat with a week slider (a bar chart of incidents per week; last position = all weeks).
  HM.heat = function (group, d) {
    function pts(a) {
      var out = new Array(a.length / 3);
      for (var i = 0, j = 0; i < a.length; i += 3, j++)
        out[j] = [d.lat0 + (a[i + 1] + 0.5) * d.dlat, d.lon0 + (a[i] + 0.5) * d.dlon, a[i + 2]];
      return out;
    }
    var all = pts(d.all), layer = L.heatLayer(all, d.options), n = d.weeks.length;
    group.addLayer(layer);
    // Keep the binned grid continuous when zoomed in: radius at least ~one bin in pixels.
    function fitRadius() {
      var map = group._map;
      if (!map) return;
      var mpp = 40075016.686 * Math.cos(map.getCenter().lat * Math.PI / 180) / Math.pow(2, map.getZoom() + 8);
      var r = Math.max(d.options.radius, Math.min(80, Math.round(1.1 * d.binM / mpp)));
      if (r !== layer.options.radius) layer.setOptions({radius: r, blur: Math.round(r * 0.8)});
    }
    group.on("add", function () {
      group._map.off("zoomend", fitRadius);
      group._map.on("zoomend", fitRadius);
      fitRadius();
    });
    HM.heatLayer = layer;
    if (!n) return;
    var frames = new Array(n), ctl = L.control({position: "bottomleft"}), label, input, bars = [], current = n;
    function show(i) {
      i = Math.max(0, Math.min(n, i | 0));
      current = i;
      if (i === n) { layer.setLatLngs(all); }
      else { frames[i] = frames[i] || pts(d.frames[i]); layer.setLatLngs(frames[i]); }
      if (input) {
        input.value = i;
        label.textContent = i === n ? d.allLabel
          : d.weeks[i] + ": " + d.n[i] + " incident" + (d.n[i] === 1 ? "" : "s") + ", " + d.deaths[i] + " killed";
        for (var k = 0; k < bars.length; k++)
          bars[k].setAttribute("class", (i === n || k === i) ? "hm-bar hm-bar-on" : "hm-bar");
      }
      HM.heatFrame = i;
    }
    HM.heatShow = show;
    function button(parent, text, title, fn) {
      var b = L.DomUtil.create("button", "", parent);
      b.type = "button"; b.textContent = text; b.title = title;
      b.addEventListener("click", fn);
      return b;
    }
    ctl.onAdd = function () {
      var div = L.DomUtil.create("div", "hm-panel hm-time");
      el("div", "hm-head", div, d.title);
      var ns = "http://www.w3.org/2000/svg", W = 240, H = 34, max = 1;
      for (var m = 0; m < n; m++) max = Math.max(max, d.n[m]);
      var svg = document.createElementNS(ns, "svg"), bw = W / n;
      svg.setAttribute("width", W); svg.setAttribute("height", H); svg.setAttribute("class", "hm-chart");
      bars = [];
      for (var k = 0; k < n; k++) {
        var h = d.n[k] ? Math.max(2, Math.round((H - 2) * d.n[k] / max)) : 0;
        var r = document.createElementNS(ns, "rect");
        r.setAttribute("x", (k * bw).toFixed(2)); r.setAttribute("y", H - h);
        r.setAttribute("width", Math.max(bw - 1, 0.6).toFixed(2)); r.setAttribute("height", h);
        var t = document.createElementNS(ns, "title");
        t.textContent = d.weeks[k] + ": " + d.n[k];
        r.appendChild(t);
        r.addEventListener("click", (function (kk) { return function () { show(kk); }; })(k));
        svg.appendChild(r); bars.push(r);
      }
      div.appendChild(svg);
      var row = L.DomUtil.create("div", "hm-row", div);
      button(row, "\u25C0", "previous week", function () { show(current === n ? n - 1 : current - 1); });
      input = L.DomUtil.create("input", "", row);
      input.type = "range"; input.min = 0; input.max = n; input.step = 1; input.value = current;
      input.title = "week (far right: all weeks)";
      input.addEventListener("input", function () { show(+input.value); });
      button(row, "\u25B6", "next week", function () { show(current + 1); });
      button(row, "all", "all weeks", function () { show(n); });
      label = L.DomUtil.create("div", "hm-label", div);
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      setTimeout(function () { show(current); }, 0);
      return div;
    };
    ctl.onRemove = function () { input = null; };
    group.on("add", function () { ctl.addTo(group._map); });
    group.on("remove", function () { ctl.remove(); });
    HM.heatControl = ctl;
  };

  // Recent incidents: clustered markers (round count symbols), popups built from text.
  HM.incidents = function (group, d) {
    var icons = [L.divIcon({className: "hm-inc hm-fixed", iconSize: [12, 12]}),
                 L.divIcon({className: "hm-inc hm-inc-fatal hm-fixed", iconSize: [14, 14]})];
    var cluster = L.markerClusterGroup({
      // no animation: clusters settle at once, so badges are placed against their final positions
      chunkedLoading: true, maxClusterRadius: 50, showCoverageOnHover: false, animate: false,
      iconCreateFunction: function (c) {
        var k = c.getChildCount(), s = k < 10 ? 22 : (k < 100 ? 28 : 34);
        return L.divIcon({html: String(k), className: "hm-cluster hm-fixed", iconSize: [s, s]});
      }
    });
    var markers = d.rows.map(function (r) {
      var m = L.marker([r[0], r[1]], {icon: icons[r[4] > 0 ? 1 : 0], keyboard: false});
      pop(m, [d.types[r[2]], "date: " + r[3], "fatalities: " + r[4], r[5], r[6] ? "id: " + r[6] : ""]);
      return m;
    });
    cluster.addLayers(markers);
    // clusters appear and split after zooms (animated): place the badges again each time
    cluster.on("animationend layeradd layerremove", function () { HM.scheduleDeclutter(); });
    group.addLayer(cluster);
  };

  function arrows(line, colour) {
    if (line.setText) line.setText("\u25BA        ", {repeat: true, offset: 5,
      attributes: {fill: colour, "font-size": "15px", "class": "hm-arrow"}});
  }

  // Lines: groups of encoded lines, each group one style; per-line tooltips when given.
  HM.lines = function (group, d) {
    var renderer = rendererFor(d);
    d.groups.forEach(function (g) {
      var lls = decode(g.enc, g.counts);
      var opts = L.extend({interactive: !!(g.tips || g.tip), smoothFactor: 1}, g.style);
      if (renderer) opts.renderer = renderer;
      if (g.tips) {
        for (var i = 0; i < lls.length; i++) {
          var one = L.polyline(lls[i], opts);
          tip(one, g.tips[i], true);
          if (g.arrows) arrows(one, g.style.color);
          group.addLayer(one);
        }
      } else if (lls.length) {
        var l = L.polyline(lls, opts);
        if (g.tip) tip(l, g.tip, true);
        group.addLayer(l);
      }
    });
  };

  // Polygons (encoded rings): service areas and other areas.
  HM.areas = function (group, d) {
    var renderer = rendererFor(d);
    d.items.forEach(function (it) {
      var polys = polygonsOf(it);
      var opts = L.extend({className: d.cls || "", interactive: !!(it.tip || it.popup)}, it.style);
      if (renderer) opts.renderer = renderer;
      var p = L.polygon(polys.length === 1 ? polys[0] : polys, opts);
      if (it.tip) tip(p, it.tip, true);
      if (it.popup) pop(p, it.popup);
      group.addLayer(p);
    });
  };

  // Defender cells: polygons on the grid with a badge of counts per status at the label point.
  HM.defenderCells = function (group, d) {
    var renderer = rendererFor(d);
    d.items.forEach(function (it) {
      var polys = polygonsOf(it);
      var opts = L.extend({className: d.cls || "", renderer: renderer}, it.style);
      var p = L.polygon(polys.length === 1 ? polys[0] : polys, opts);
      p._hmCell = it.id;
      tip(p, it.tip, true);
      group.addLayer(p);
      HM.cells[it.id] = p;
      p._hmLabel = labelPoint(polys);
      var badge = el("div", "hm-badge hm-mover");
      badge.setAttribute("data-cell", it.id);
      it.badge.forEach(function (b) { el("span", b[1], badge, b[0]); });
      var m = mover(p._hmLabel, badge, it.prio, p.getBounds(), [0, 0]);
      tip(m, it.tip, false);
      group.addLayer(m);
    });
  };

  // Alerts on defender cells: a dashed outline in the level's colour and a warning icon.
  HM.cellAlerts = function (group, d) {
    d.items.forEach(function (it) {
      var cell = HM.cells[it.cell];
      if (!cell) return;
      var outline = L.polygon(cell.getLatLngs(), L.extend({className: "hm-alert-cell", pane: "hmAreas"}, it.style));
      tip(outline, it.tip, true);
      pop(outline, it.popup);
      group.addLayer(outline);
      var icon = el("div", "hm-alert hm-mover");
      icon.innerHTML = d.icons[it.icon];  // our own SVG (no user text)
      var m = mover(cell._hmLabel, icon, it.prio, cell.getBounds(), [1, -1]);
      tip(m, it.tip, false);
      pop(m, it.popup);
      group.addLayer(m);
    });
  };

  // Point markers with inline-SVG icons (havens, bases, alert points) or numbered diamonds (patrol stops).
  HM.points = function (group, d) {
    var icons = d.icons.map(function (ic) {
      return ic.html === null ? null : L.divIcon({className: ic.cls + " hm-fixed", html: ic.html, iconSize: [ic.size, ic.size]});
    });
    d.rows.forEach(function (r) {
      var icon = icons[r[2]];
      if (icon === null) {
        var ic = d.icons[r[2]], wrap = el("div", "hm-stop");
        var shape = el("div", "hm-stop-shape", wrap);
        shape.style.background = ic.color;
        el("span", "", wrap, r[5]);
        wrap.style.width = wrap.style.height = ic.size + "px";
        icon = L.divIcon({className: ic.cls + " hm-fixed", html: wrap, iconSize: [ic.size, ic.size]});
      }
      var m = L.marker([r[0], r[1]], {icon: icon, keyboard: false, riseOnHover: true});
      if (r[3]) tip(m, r[3]);
      if (r[4]) pop(m, r[4]);
      group.addLayer(m);
    });
  };

  // Circle markers (exact defender points): rows [lat, lon, style index, tooltip lines].
  HM.dots = function (group, d) {
    d.rows.forEach(function (r) {
      var m = L.circleMarker([r[0], r[1]], d.styles[r[2]]);
      tip(m, r[3]);
      group.addLayer(m);
    });
  };

  // Patrol days behave like radio buttons: switching one on switches the others off.
  HM.radio = function (map, d) {
    var gs = d.names.map(function (k) { return HM.groups[k]; }).filter(Boolean);
    map.on("overlayadd", function (e) {
      if (gs.indexOf(e.layer) < 0) return;
      // in a microtask: after the layer control has handled the click, so it redraws its checkboxes
      Promise.resolve().then(function () {
        gs.forEach(function (g) { if (g !== e.layer && map.hasLayer(g)) map.removeLayer(g); });
      });
    });
  };

  // ------------------------------------------------------------------ control, legend, summary

  // The layer control, with section headers (Threat · Safety · Patrols) and names set as text.
  HM.Control = L.Control.Layers.extend({
    _update: function () {
      this._hmSection = null;
      return L.Control.Layers.prototype._update.call(this);
    },
    _addItem: function (obj) {
      var key = obj.layer._hmKey, meta = key ? HM.meta[key] : null;
      if (obj.overlay && meta && meta.section !== this._hmSection) {
        this._hmSection = meta.section;
        el("div", "hm-ctl-sec", this._overlaysList, meta.section);
      }
      var label = L.Control.Layers.prototype._addItem.call(this, obj);
      var spans = label.getElementsByTagName("span");
      spans[spans.length - 1].textContent = " " + (meta ? meta.name : obj.layer._hmName || "");
      if (key) label.setAttribute("data-layer", key);
      return label;
    }
  });

  function visibleKeys() {
    return HM.order.filter(function (k) { return HM.map.hasLayer(HM.groups[k]); });
  }
  HM.visibleLayers = visibleKeys;

  HM.legendOpen = {};
  HM.renderLegend = function () {
    var body = document.getElementById("hm-legend-body");
    if (!body) return;
    while (body.firstChild) body.removeChild(body.firstChild);
    var on = visibleKeys(), any = false;
    SECTIONS.concat(["Base map"]).forEach(function (section) {
      var keys = on.filter(function (k) { return HM.meta[k].section === section && HM.meta[k].legend.length; });
      if (!keys.length) return;
      any = true;
      var det = el("details", "hm-lsec", body);
      det.setAttribute("data-section", section);
      det.open = HM.printing || (HM.legendOpen[section] !== undefined ? HM.legendOpen[section] : section !== "Base map");
      det.addEventListener("toggle", function () { if (!HM.printing) HM.legendOpen[section] = det.open; });
      el("summary", "", det, section);
      keys.forEach(function (k) {
        var blk = el("div", "hm-lgroup", det);
        blk.setAttribute("data-layer", k);
        el("div", "hm-lname", blk, HM.meta[k].name);
        HM.meta[k].legend.forEach(function (row) {
          var r = el("div", "hm-lrow" + (row[2] ? " hm-lnote" : ""), blk);
          var sw = el("span", "hm-sw", r);
          sw.innerHTML = row[0];  // our own SVG swatch (fixed colours, no user text)
          el("span", "", r, row[1]);
        });
      });
    });
    if (!any) el("div", "hm-lnote", body, "No layer is switched on.");
    HM.fitLegend();
  };
  // The legend sits under the layer control: it may use the height left below it.
  HM.fitLegend = function () {
    var lg = document.getElementById("hm-legend");
    if (!lg || !HM.map) return;
    var c = HM.map.getContainer().getBoundingClientRect(), top = lg.getBoundingClientRect().top;
    lg.style.maxHeight = Math.max(80, c.bottom - top - 28) + "px";
  };

  function legendControl(map) {
    var ctl = L.control({position: "topright"});
    ctl.onAdd = function () {
      var div = L.DomUtil.create("div", "hm-panel");
      div.id = "hm-legend";
      var det = el("details", "", div);
      det.open = true;
      var sum = el("summary", "", det);
      el("b", "", sum, "Legend");
      el("div", "", det).id = "hm-legend-body";
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      return div;
    };
    ctl.addTo(map);
  }

  function flyTo(bounds) {
    var pad = HM.padding();
    HM.map.flyToBounds(bounds, {paddingTopLeft: pad[0], paddingBottomRight: pad[1], maxZoom: 16, duration: 0.6});
  }
  function boundsOf(target) {
    var b = null;
    (target.cells || []).forEach(function (id) {
      var c = HM.cells[id];
      if (c) b = b ? b.extend(c.getBounds()) : L.latLngBounds(c.getBounds().getSouthWest(), c.getBounds().getNorthEast());
    });
    if (target.bounds) {
      var x = L.latLngBounds(target.bounds);
      b = b ? b.extend(x) : x;
    }
    return b;
  }
  HM.boundsOf = boundsOf;

  function summaryControl(map, d) {
    HM.summaryLines = d.lines;
    var ctl = L.control({position: "topleft"});
    ctl.onAdd = function () {
      var div = L.DomUtil.create("div", "hm-panel");
      div.id = "hm-summary";
      var head = el("div", "", div);
      head.id = "hm-title";
      el("div", "hm-title-name", head, d.title);
      if (d.asOf) el("div", "hm-asof", head, "as of " + d.asOf);
      if (d.exact) el("div", "", head, d.exact).id = "hm-exact-warning";
      if (d.heading) el("div", "hm-sum-head", div, d.heading);
      var list = el("div", "hm-sum-list", div);
      d.lines.forEach(function (line, i) {
        var row = el(line.cells || line.bounds ? "button" : "div", "hm-sum-row hm-sum-" + line.kind, list);
        if (row.tagName === "BUTTON") row.type = "button";
        row.setAttribute("data-line", i);
        var sw = el("span", "hm-sw", row);
        sw.innerHTML = line.swatch || "";  // our own SVG
        var txt = el("span", "hm-sum-text", row);
        el("b", "", txt, line.count);
        el("span", "", txt, " " + line.text);
        if (line.place) el("span", "hm-sum-place", txt, line.place);
        if (row.tagName === "BUTTON") row.addEventListener("click", function () {
          var b = boundsOf(line);
          if (b) flyTo(b);
        });
      });
      if (d.note) el("div", "hm-sum-note", div, d.note);
      L.DomEvent.disableClickPropagation(div);
      L.DomEvent.disableScrollPropagation(div);
      return div;
    };
    ctl.addTo(map);
  }

  // Panel sizes as fitBounds paddings: what the summary (left) and legend/control (right) cover.
  HM.padding = function () {
    var c = HM.map.getContainer().getBoundingClientRect(), left = 12, right = 12;
    var s = document.getElementById("hm-summary"), lg = document.getElementById("hm-legend");
    var ctl = document.querySelector(".leaflet-control-layers");
    var shown = function (e) { return e && e.getBoundingClientRect().width > 0; };  // (hidden in print)
    if (shown(s)) left = Math.max(left, s.getBoundingClientRect().right - c.left + 12);
    [lg, ctl].forEach(function (e) { if (shown(e)) right = Math.max(right, c.right - e.getBoundingClientRect().left + 12); });
    if (left + right > c.width - 200) { var k = (c.width - 200) / (left + right); left *= k; right *= k; }
    return [[left, 16], [right, 16]];
  };

  HM.finish = function (map, d) {
    HM.order.forEach(function (k) { if (HM.meta[k].show) map.addLayer(HM.groups[k]); });
    var small = window.innerWidth < 1300 || window.innerHeight < 880;
    var ctl = new HM.Control(null, null, {collapsed: small, position: "topright"});
    d.tiles.forEach(function (t) {
      var layer = window[t.name];
      if (!layer) return;
      layer._hmName = t.label;
      ctl.addBaseLayer(layer, t.label);
    });
    HM.order.forEach(function (k) {
      var meta = HM.meta[k];
      if (meta.base) ctl.addBaseLayer(HM.groups[k], meta.name);
    });
    SECTIONS.forEach(function (section) {
      HM.order.forEach(function (k) {
        var meta = HM.meta[k];
        if (!meta.base && meta.section === section) ctl.addOverlay(HM.groups[k], meta.name);
      });
    });
    HM.order.forEach(function (k) {
      var meta = HM.meta[k];
      if (!meta.base && SECTIONS.indexOf(meta.section) < 0) ctl.addOverlay(HM.groups[k], meta.name);
    });
    summaryControl(map, d.summary);
    ctl.addTo(map);
    HM.control = ctl;
    L.control.zoom({position: "topleft"}).addTo(map);
    legendControl(map);
    HM.renderLegend();
    HM.home = d.home;
    map.on("overlayadd overlayremove baselayerchange", function () { HM.renderLegend(); HM.scheduleDeclutter(); });
    map.on("zoomend moveend", function () { HM.scheduleDeclutter(); });
    map.on("resize", function () {
      HM.fitLegend();
      if (HM.printing) HM.fitHome(false);  // the page size is known only once the print layout exists
      HM.scheduleDeclutter();
    });
  };

  // Full-screen button and measure tool (inlined plugins), under the zoom buttons.
  HM.tools = function (map) {
    if (L.control.fullscreen)
      L.control.fullscreen({position: "topleft", title: "Full screen", titleCancel: "Exit full screen"}).addTo(map);
    if (L.Control.Measure) {
      // leaflet-measure 2.1.7 with Leaflet >= 1.8 needs this capture-marker fix (as folium ships it)
      L.Control.Measure.include({_setCaptureMarkerIcon: function () {
        this._captureMarker.options.autoPanOnFocus = false;
        this._captureMarker.setIcon(L.divIcon({iconSize: this._map.getSize().multiplyBy(2)}));
      }});
      map.addControl(new L.Control.Measure({position: "topleft", primaryLengthUnit: "meters",
        secondaryLengthUnit: "kilometers", primaryAreaUnit: "sqmeters", secondaryAreaUnit: "hectares",
        activeColor: "#bd0026", completedColor: "#08519c"}));
    }
  };

  // ------------------------------------------------------------------ decluttering

  function rect(e) { var r = e.getBoundingClientRect(); return {l: r.left, t: r.top, r: r.right, b: r.bottom}; }
  function hits(a, b) { return a.l < b.r && b.l < a.r && a.t < b.b && b.t < a.b; }
  function visible(e) {
    if (!e.isConnected || e.offsetParent === null) return false;
    var r = e.getBoundingClientRect();
    return r.width > 0 && r.height > 0;
  }
  // Badges and alert icons never hide under other symbols or panels: each, most urgent first,
  // takes the free spot nearest to its preferred place (its cell's label point, alert icons
  // up and right of it) on a spiral of 6 px steps, touching its cell; a badge
  // with no free spot is hidden (its cell still shows the counts on hover).
  function Taken() { this.cells = {}; }
  Taken.prototype.keys = function (r, fn) {
    for (var y = Math.floor(r.t / 64); y <= Math.floor(r.b / 64); y++)
      for (var x = Math.floor(r.l / 64); x <= Math.floor(r.r / 64); x++) fn(y + ":" + x);
  };
  Taken.prototype.add = function (r) {
    var self = this;
    this.keys(r, function (k) { (self.cells[k] = self.cells[k] || []).push(r); });
  };
  Taken.prototype.hits = function (r) {
    var self = this, hit = false;
    this.keys(r, function (k) { if (!hit && self.cells[k]) hit = self.cells[k].some(function (t) { return hits(r, t); }); });
    return hit;
  };
  var SPIRAL = (function () {
    var out = [[0, 0]];
    for (var ring = 1; ring <= 12; ring++) {
      var n = 8 * ring;
      for (var i = 0; i < n; i++) {
        var a = -Math.PI / 2 + 2 * Math.PI * i / n;
        out.push([Math.round(Math.cos(a) * 6 * ring), Math.round(Math.sin(a) * 6 * ring)]);
      }
    }
    return out;
  })();
  HM.declutter = function () {
    var map = HM.map;
    if (!map) return;
    var c = map.getContainer().getBoundingClientRect(), taken = new Taken();
    document.querySelectorAll(".hm-fixed").forEach(function (e) { if (visible(e)) taken.add(rect(e)); });
    document.querySelectorAll(".leaflet-control").forEach(function (e) { if (visible(e)) taken.add(rect(e)); });
    var live = HM.movers.filter(function (m) { return map.hasLayer(m.marker) && m.el.isConnected; });
    live.sort(function (a, b) { return b.prio - a.prio; });
    live.forEach(function (m) {
      m.el.style.transform = "translate(-50%, -50%)";
      m.el.classList.remove("hm-hidden");
    });
    var hidden = 0;
    live.forEach(function (m) {
      var r0 = rect(m.el), w = r0.r - r0.l, h = r0.b - r0.t, placed = false;
      var nw = map.latLngToContainerPoint(m.cell.getNorthWest()), se = map.latLngToContainerPoint(m.cell.getSouthEast());
      // the symbol's centre stays in its cell, or on its edge (half the symbol may stick out)
      var cell = {l: c.left + nw.x - w / 2, t: c.top + nw.y - h / 2, r: c.left + se.x + w / 2, b: c.top + se.y + h / 2};
      var fx = m.first[0] * (w + 4), fy = m.first[1] * (h + 4);
      for (var i = 0; i < SPIRAL.length && !placed; i++) {
        var dx = fx + SPIRAL[i][0], dy = fy + SPIRAL[i][1];
        var r = {l: r0.l + dx, t: r0.t + dy, r: r0.r + dx, b: r0.b + dy};
        var cx = (r.l + r.r) / 2, cy = (r.t + r.b) / 2;
        if (cx < cell.l || cx > cell.r || cy < cell.t || cy > cell.b) continue;
        if (r.l < c.left || r.t < c.top || r.r > c.right || r.b > c.bottom) continue;
        if (taken.hits(r)) continue;
        m.el.style.transform = "translate(-50%, -50%) translate(" + dx + "px, " + dy + "px)";
        taken.add({l: r.l - 1, t: r.t - 1, r: r.r + 1, b: r.b + 1});
        placed = true;
      }
      if (!placed) { m.el.classList.add("hm-hidden"); hidden++; }
    });
    HM.hiddenBadges = hidden;
    return hidden;
  };
  var declutterQueued = false;
  HM.scheduleDeclutter = function () {
    if (declutterQueued) return;
    declutterQueued = true;
    requestAnimationFrame(function () { declutterQueued = false; HM.declutter(); });
  };

  // ------------------------------------------------------------------ home view, print, ready

  HM.homeBounds = function () { return HM.home ? boundsOf(HM.home) : null; };
  HM.fitHome = function (animate) {
    var b = HM.homeBounds();
    if (!b) return;
    var pad = HM.padding();
    HM.map.fitBounds(b, {paddingTopLeft: pad[0], paddingBottomRight: pad[1], maxZoom: 16, animate: !!animate});
  };

  // Printing: every legend section open, the map refitted to the page, badges placed again.
  function printMode(on) {
    var map = HM.map;
    if (!map || HM.printing === on) return;
    HM.printing = on;
    document.documentElement.classList.toggle("hm-print", on);
    var top = document.querySelector("#hm-legend > details");
    if (top && on) top.open = true;
    map.invalidateSize({animate: false});
    HM.renderLegend();
    if (on) HM.fitHome(false); else if (HM.homeView) map.setView(HM.homeView.center, HM.homeView.zoom, {animate: false});
    HM.declutter();
  }
  HM.printMode = printMode;

  HM.ready = function (map) {
    HM.built = performance.now();
    HM.fitHome(false);
    HM.homeView = {center: map.getCenter(), zoom: map.getZoom()};
    if (window.matchMedia) {
      var mq = window.matchMedia("print");
      var onChange = function (e) { printMode(e.matches); };
      if (mq.addEventListener) mq.addEventListener("change", onChange); else if (mq.addListener) mq.addListener(onChange);
    }
    window.addEventListener("beforeprint", function () { printMode(true); });
    window.addEventListener("afterprint", function () { printMode(false); });
    requestAnimationFrame(function () {
      HM.declutter();
      requestAnimationFrame(function () {
        window.hmDrawn = performance.now();
        document.documentElement.setAttribute("data-hm-drawn", "1");
      });
    });
  };

  // For tests and debugging: per layer, whether it is on and how many leaves it holds/draws.
  HM.stats = function () {
    var out = {};
    Object.keys(HM.groups).forEach(function (name) {
      var g = HM.groups[name], total = 0, drawn = 0;
      (function walk(l) {
        if (L.MarkerClusterGroup && l instanceof L.MarkerClusterGroup) {
          var k = l.getLayers().length; total += k; if (l._map) drawn += k; return;
        }
        if (l.getLayers && !(l instanceof L.Path)) { l.getLayers().forEach(walk); return; }
        total += 1; if (l._map) drawn += 1;
      })(g);
      out[name] = {on: !!(HM.map && HM.map.hasLayer(g)), total: total, drawn: drawn};
    });
    return out;
  };
})();
