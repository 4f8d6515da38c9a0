// The map: the town's districts from its GeoJSON (a usable map with no tile server at all),
// an optional base map from the configured tile server, and one marker per entity, drawn on
// one canvas so that thousands of markers recolour within a frame.
/* global L */

const MAX_PATCHES = 64;

// Leaflet's canvas redraws, per frame, the one rectangle that bounds every changed marker:
// with markers changing all over the map that is nearly the whole map, 5,000 circles, for a
// handful of recoloured ones. This renderer keeps the changed markers' own rectangles and
// redraws only what lies in them (all that overlaps them, in drawing order, so markers still
// stack as before); past MAX_PATCHES rectangles, or when Leaflet asks for a full redraw
// (zoom, pan, resize), it draws everything as Leaflet does.
const PatchCanvas = L.Canvas.extend({
  _extendRedrawBounds(layer) {
    const bounds = layer._pxBounds;
    if (!bounds) return;
    const pad = (layer.options.weight || 0) + 1;
    const patches = (this._patches ||= []);
    const last = patches[patches.length - 1];
    const x0 = Math.floor(bounds.min.x - pad), y0 = Math.floor(bounds.min.y - pad);
    const x1 = Math.ceil(bounds.max.x + pad), y1 = Math.ceil(bounds.max.y + pad);
    // (A restyled marker asks twice for the same rectangle.)
    if (!last || last[0] !== x0 || last[1] !== y0 || last[2] !== x1 || last[3] !== y1) patches.push([x0, y0, x1, y1]);
  },

  _updatePaths() {
    this._patches = null;
    this._everything = true;
    L.Canvas.prototype._updatePaths.call(this);
  },

  _redraw() {
    this._redrawRequest = null;
    const patches = this._patches || [];
    this._patches = null;
    if (this._everything || patches.length > MAX_PATCHES) {
      this._everything = false;
      this._redrawBounds = null;
      this._clear();
      this._draw();
      return;
    }
    if (!patches.length) return;
    const ctx = this._ctx;
    ctx.save();
    ctx.beginPath();
    for (const [x0, y0, x1, y1] of patches) ctx.rect(x0, y0, x1 - x0, y1 - y0);
    ctx.clip();
    for (const [x0, y0, x1, y1] of patches) ctx.clearRect(x0, y0, x1 - x0, y1 - y0);
    this._drawing = true;
    for (let order = this._drawFirst; order; order = order.next) {
      const layer = order.layer;
      // Padded like a patch: a stroke reaches past the bounds by half its width, and
      // its antialiasing further (Leaflet's own test misses those pixels).
      if (layer._pxBounds && overlaps(layer._pxBounds, (layer.options.weight || 0) + 1, patches)) layer._updatePath();
    }
    this._drawing = false;
    ctx.restore();
  },
});

function overlaps({ min, max }, pad, patches) {
  for (const [x0, y0, x1, y1] of patches) {
    if (max.x + pad >= x0 && min.x - pad <= x1 && max.y + pad >= y0 && min.y - pad <= y1) return true;
  }
  return false;
}

export class TownMap {
  constructor(element, config, definition, onSelect) {
    this.map = L.map(element, { preferCanvas: true, zoomSnap: 0.25 });
    this.renderer = new PatchCanvas({ padding: 0.3 });
    this.markers = new Map();
    this.onSelect = onSelect;
    if (config.tileUrl) {
      // Tiles that do not come (the tile server unreachable) leave the districts visible.
      L.tileLayer(config.tileUrl, { attribution: config.tileAttribution, maxZoom: 19 }).addTo(this.map);
    }
    const districts = definition.districts;
    this.districts = L.geoJSON(districts || { type: "FeatureCollection", features: [] }, {
      style: { color: "#12355b", weight: 2, fillColor: "#9fb7d1", fillOpacity: 0.12 },
      interactive: false,
      renderer: this.renderer,
    }).addTo(this.map);
    if (definition.center) {
      this.map.setView([definition.center[1], definition.center[0]], definition.zoom || 13);
    } else if (this.districts.getLayers().length) {
      this.map.fitBounds(this.districts.getBounds(), { padding: [12, 12] });
    } else {
      this.map.setView([35.0, 135.0], 5);
    }
  }

  labelDistricts(nameOf) {
    this.districts.eachLayer((layer) => {
      layer.bindTooltip(nameOf(layer.feature), { permanent: true, direction: "center", className: "district-label" });
    });
  }

  /** Place or recolour the marker of `id` at `[lon, lat]`. */
  show(id, position, color, title) {
    let marker = this.markers.get(id);
    if (!marker) {
      marker = L.circleMarker([position[1], position[0]], {
        renderer: this.renderer, radius: 7, weight: 1.5, color: "#1b1b1b", fillColor: color, fillOpacity: 1,
      });
      marker.on("click", () => this.onSelect(id));
      marker.addTo(this.map);
      this.markers.set(id, marker);
    } else {
      const latlng = marker.getLatLng();
      if (latlng.lat !== position[1] || latlng.lng !== position[0]) marker.setLatLng([position[1], position[0]]);
      if (marker.options.fillColor !== color) marker.setStyle({ fillColor: color });
      if (!this.map.hasLayer(marker)) marker.addTo(this.map);
    }
    marker.options.title = title;
  }

  hide(id) {
    const marker = this.markers.get(id);
    if (marker && this.map.hasLayer(marker)) marker.remove();
  }

  remove(id) {
    this.hide(id);
    this.markers.delete(id);
  }

  /** The colour actually painted at the centre of `id`'s marker (for tests and checks). */
  paintedColor(id) {
    const marker = this.markers.get(id);
    if (!marker || !this.map.hasLayer(marker)) return null;
    return this.paintedAt(marker.getLatLng());
  }

  /** The colour the canvas shows at `latlng` (null where nothing is drawn). */
  paintedAt(latlng) {
    const canvas = this.renderer._container;
    const point = this.map.latLngToContainerPoint(latlng);
    const origin = canvas.getBoundingClientRect();
    const mapBox = this.map.getContainer().getBoundingClientRect();
    const scale = canvas.width / origin.width;
    const px = Math.round((point.x + mapBox.left - origin.left) * scale);
    const py = Math.round((point.y + mapBox.top - origin.top) * scale);
    const [r, g, b, a] = canvas.getContext("2d").getImageData(px, py, 1, 1).data;
    if (!a) return null;
    return `#${[r, g, b].map((c) => c.toString(16).padStart(2, "0")).join("")}`;
  }
}

/** Whether `[lon, lat]` is inside a GeoJSON Polygon or MultiPolygon (even-odd rule). */
export function inside(point, geometry) {
  const polygons = geometry.type === "Polygon" ? [geometry.coordinates]
    : geometry.type === "MultiPolygon" ? geometry.coordinates : [];
  return polygons.some((rings) => rings.reduce((odd, ring) => (inRing(point, ring) ? !odd : odd), false));
}

function inRing([x, y], ring) {
  let odd = false;
  for (let i = 0, j = ring.length - 1; i < ring.length; j = i++) {
    const [xi, yi] = ring[i], [xj, yj] = ring[j];
    if (yi > y !== yj > y && x < ((xj - xi) * (y - yi)) / (yj - yi) + xi) odd = !odd;
  }
  return odd;
}
