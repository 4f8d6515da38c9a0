// The dashboard: its definition (an NGSI-LD entity of the tenant), a snapshot of the
// entities of its layers, then live changes; filters, an alert list, a detail panel with the
// history chart. Everything comes from the NGSI-LD API and the tenant's event stream.
import { Api, ApiError } from "./api.js";
import { completeSignIn, signIn, signOut, token } from "./auth.js";
import { drawChart } from "./chart.js";
import { lang, pick, setLang, t, translate } from "./i18n.js";
import { levelOf, levelTable, UNKNOWN } from "./levels.js";
import { LiveStream } from "./live.js";
import { inside, TownMap } from "./map.js";

const RANGES = { "6h": [6 * 3600e3, "PT10M"], "24h": [24 * 3600e3, "PT30M"], "7d": [7 * 86400e3, "PT3H"] };
const $ = (id) => document.getElementById(id);

const state = {
  config: null, api: null, definition: null, levels: new Map(), layers: new Map(),
  entities: new Map(), // id -> {doc, layer, level, position, district}
  used: [], refreshing: null,
  dirty: new Set(), frame: 0, selected: null, range: "6h",
  filter: { types: new Set(), district: "", minRank: -1 },
  stats: { events: 0, applied: 0, workMs: 0, longestWorkMs: 0 },
};

function message(text) {
  $("message").textContent = text;
  $("message").hidden = !text;
}

function valueOf(doc, attr) {
  const member = doc?.[attr];
  const item = Array.isArray(member) ? member[0] : member;
  if (item == null) return undefined;
  if (typeof item !== "object") return item; // keyValues-style value
  return item.value ?? item.object ?? item.languageMap ?? item.json ?? item.vocab;
}

/** A keyValues member of the definition: JsonProperty and LanguageProperty come wrapped. */
function unwrap(value) {
  if (value && typeof value === "object" && !Array.isArray(value)) {
    if ("json" in value) return value.json;
    if ("languageMap" in value) return value.languageMap;
  }
  return value;
}

function nameOf(doc) {
  const name = valueOf(doc, "name");
  return (name && pick(name)) || doc.id.split(":").pop();
}

function districtOf(position) {
  const features = state.definition.districts?.features || [];
  const found = features.find((f) => f.geometry && inside(position, f.geometry));
  return found ? String(found.id ?? found.properties?.id ?? "") : "";
}

/** The attributes the page draws from (the stream sends only those). */
function usedAttributes() {
  const names = new Set(["name", "description"]);
  for (const layer of state.layers.values()) {
    names.add(layer.attribute);
    names.add(layer.location || "location");
  }
  return [...names].filter(Boolean);
}

/** A change from the stream: its attributes (the used ones, as they now are) over what the
 * snapshot gave of the others, which are only shown in the detail panel. */
function applyChange(doc) {
  const held = state.entities.get(doc.id);
  if (!held || doc.deletedAt) { apply(doc); return; }
  const merged = { ...held.doc };
  for (const name of state.used) delete merged[name];
  apply(Object.assign(merged, doc));
  if (state.selected === doc.id) refreshSelected(doc.id);
}

/** The selected entity anew from the API (its other attributes may have changed too). */
function refreshSelected(id) {
  if (state.refreshing) return;
  state.refreshing = state.api.entity(id, { options: "sysAttrs" })
    .then((doc) => apply(doc))
    .catch(() => {})
    .finally(() => { state.refreshing = null; });
}

/** Take `doc` (from the snapshot or a change) unless what is held is newer. */
function apply(doc) {
  const layer = state.layers.get(doc.type);
  if (!layer) return;
  if (doc.deletedAt) {
    // The entity itself was deleted (shown with its own deletedAt); a deleted attribute comes
    // in an entity without one, as an attribute with deletedAt, and is dealt with as an update.
    state.entities.delete(doc.id);
    markDirty(doc.id);
    return;
  }
  const held = state.entities.get(doc.id);
  const modified = doc.modifiedAt || "";
  if (held && held.doc.modifiedAt && modified && modified < held.doc.modifiedAt) return;
  const location = valueOf(doc, layer.location || "location");
  const position = location?.type === "Point" ? location.coordinates : held?.position;
  const level = levelOf(layer, valueOf(doc, layer.attribute), state.levels);
  const district = position && (!held || held.position !== position) ? districtOf(position) : held?.district;
  state.entities.set(doc.id, { doc, layer, level, position, district });
  state.stats.applied += 1;
  markDirty(doc.id);
}

function markDirty(id) {
  state.dirty.add(id);
  if (!state.frame) state.frame = requestAnimationFrame(flush);
}

function visible(entry) {
  const { filter } = state;
  return (
    filter.types.has(entry.layer.type) &&
    (!filter.district || entry.district === filter.district) &&
    entry.level.rank >= filter.minRank
  );
}

// Changes are drawn once per frame, however many arrived: 50 updates a second cost at most
// one canvas redraw per frame.
function flush() {
  const started = performance.now();
  try { draw(); } finally { work(started); }
}

/** The page's own script time (its frame budget, whatever else the machine does). */
function work(started) {
  const spent = performance.now() - started;
  state.stats.workMs += spent;
  state.stats.longestWorkMs = Math.max(state.stats.longestWorkMs, spent);
}

function draw() {
  state.frame = 0;
  let alerts = false;
  for (const id of state.dirty) {
    const entry = state.entities.get(id);
    if (!entry) { state.map.remove(id); alerts = true; continue; }
    if (entry.layer.alert) alerts = true;
    if (entry.position && visible(entry)) state.map.show(id, entry.position, entry.level.color, nameOf(entry.doc));
    else state.map.hide(id);
    if (state.selected === id) showAttributes(entry);
  }
  state.dirty.clear();
  if (alerts) renderAlerts();
}

function refilter() {
  for (const id of state.entities.keys()) state.dirty.add(id);
  if (state.frame) cancelAnimationFrame(state.frame);
  flush();
  renderAlerts();
}

function renderAlerts() {
  const list = $("alerts");
  const shown = [...state.entities.values()]
    .filter((e) => e.layer.alert && e.level.rank > 0 && visible(e))
    .sort((a, b) => b.level.rank - a.level.rank);
  list.replaceChildren(...shown.map((entry) => {
    const item = document.createElement("li");
    item.style.borderLeftColor = entry.level.color;
    item.dataset.id = entry.doc.id;
    const description = valueOf(entry.doc, "description");
    item.textContent = `${pick(entry.level.label)} · ${nameOf(entry.doc)}${description ? " — " + pick(description) : ""}`;
    item.addEventListener("click", () => select(entry.doc.id));
    return item;
  }));
  if (!shown.length) {
    const none = document.createElement("li");
    none.textContent = t("noAlerts");
    list.append(none);
  }
}

function showAttributes(entry) {
  $("detail-name").textContent = `${pick(entry.layer.label)}: ${nameOf(entry.doc)}`;
  const rows = [];
  for (const [key, member] of Object.entries(entry.doc)) {
    if (["id", "type", "@context", "createdAt", "modifiedAt", "location"].includes(key)) continue;
    const value = valueOf(entry.doc, key);
    if (value === undefined) continue;
    const dt = document.createElement("dt");
    dt.textContent = key;
    const dd = document.createElement("dd");
    const unit = member?.unitCode ? ` ${member.unitCode}` : "";
    dd.textContent = `${typeof value === "object" ? pick(value) || JSON.stringify(value) : value}${unit}`;
    if (member?.observedAt) dd.title = `${t("observedAt")} ${member.observedAt}`;
    rows.push(dt, dd);
  }
  const dt = document.createElement("dt");
  dt.textContent = t("level");
  const dd = document.createElement("dd");
  dd.innerHTML = `<span class="swatch" style="background:${entry.level.color}"></span>`;
  dd.append(pick(entry.level.label));
  dd.dataset.level = entry.level.id;
  rows.push(dt, dd);
  $("detail-attrs").replaceChildren(...rows);
}

async function select(id) {
  const entry = state.entities.get(id);
  if (!entry) return;
  state.selected = id;
  if ($("detail").hidden) { $("detail").hidden = false; state.map.map.invalidateSize(); }
  showAttributes(entry);
  await drawHistory();
}

async function drawHistory() {
  const entry = state.entities.get(state.selected);
  const chart = $("chart");
  for (const button of $("ranges").querySelectorAll("button")) {
    button.setAttribute("aria-pressed", String(button.dataset.range === state.range));
  }
  if (!entry || entry.layer.values) { chart.replaceChildren(); $("ranges").hidden = true; return; }
  $("ranges").hidden = false;
  const [span, period] = RANGES[state.range];
  const until = new Date(), since = new Date(until.getTime() - span);
  chart.dataset.state = "loading";
  let points = [];
  try {
    points = await state.api.aggregatedHistory(entry.doc.id, entry.layer.attribute, since, period);
  } catch (error) {
    points = [];
    chart.dataset.error = error.message;
  }
  if (state.selected !== entry.doc.id) return;
  const thresholds = (entry.layer.thresholds || []).map((th) => ({
    value: th.value, color: state.levels.get(th.level)?.color || "#999",
  }));
  drawChart(chart, points, { since, until, thresholds, unit: entry.layer.unit || "", empty: t("noHistory") });
  chart.dataset.state = "ready";
  chart.dataset.points = String(points.length);
}

async function snapshot() {
  for (const layer of state.layers.values()) {
    const docs = await state.api.entitiesOfType(layer.type);
    for (const doc of docs) apply(doc);
  }
  document.body.dataset.snapshot = String((Number(document.body.dataset.snapshot) || 0) + 1);
}

function buildFilters() {
  const types = $("type-filters");
  types.replaceChildren();
  for (const layer of state.layers.values()) {
    const label = document.createElement("label");
    const box = document.createElement("input");
    box.type = "checkbox";
    box.checked = state.filter.types.has(layer.type);
    box.dataset.type = layer.type;
    box.addEventListener("change", () => {
      if (box.checked) state.filter.types.add(layer.type); else state.filter.types.delete(layer.type);
      refilter();
    });
    label.append(box, ` ${pick(layer.label) || layer.type}`);
    types.append(label);
  }
  const district = $("district");
  district.replaceChildren(new Option(t("all"), ""));
  for (const feature of state.definition.districts?.features || []) {
    const id = String(feature.id ?? feature.properties?.id ?? "");
    district.append(new Option(pick(feature.properties?.name) || id, id));
  }
  district.value = state.filter.district;
  const level = $("level");
  level.replaceChildren(new Option(t("anyLevel"), "-1"));
  for (const entry of state.levels.values()) level.append(new Option(pick(entry.label), String(entry.rank)));
  level.value = String(state.filter.minRank);
  const legend = $("legend");
  legend.replaceChildren(...[...state.levels.values()].map((entry) => {
    const row = document.createElement("div");
    row.innerHTML = `<span class="swatch" style="background:${entry.color}"></span>`;
    row.append(pick(entry.label));
    return row;
  }));
}

function renderTexts() {
  translate();
  $("lang").textContent = t("other");
  $("signin").textContent = t("signin");
  $("signout").textContent = t("signout");
  const title = pick(state.definition?.title) || "Toshi";
  $("title").textContent = title;
  document.title = title;
  if (state.definition) { buildFilters(); renderAlerts(); }
  const status = $("status");
  status.textContent = t(status.dataset.state);
}

function setStatus(name) {
  $("status").dataset.state = name;
  $("status").textContent = t(name);
}

async function start() {
  setLang(lang());
  state.config = await (await fetch("/dashboard/config.json")).json();
  const { config } = state;
  if (config.oidc) await completeSignIn(config.oidc).catch((error) => message(error.message));
  const params = new URLSearchParams(location.search);
  const signedIn = token();
  const credential = signedIn || (config.auth ? config.publicToken : null);
  state.api = new Api(params.get("tenant") || "", credential);
  $("signin").hidden = !config.oidc || !!signedIn;
  $("signout").hidden = !signedIn;
  $("who").textContent = config.auth && !signedIn ? t("publicView") : "";
  $("signin").addEventListener("click", () => signIn(config.oidc));
  $("signout").addEventListener("click", () => { signOut(); location.reload(); });
  $("lang").addEventListener("click", () => { setLang(lang() === "ja" ? "en" : "ja"); renderTexts(); });
  renderTexts();
  const dashboardId = params.get("dashboard") || "urn:ngsi-ld:Dashboard:main";
  try {
    const doc = await state.api.entity(dashboardId, { options: "keyValues" });
    state.definition = Object.fromEntries(Object.entries(doc).map(([key, value]) => [key, unwrap(value)]));
  } catch (error) {
    const denied = error instanceof ApiError && (error.status === 401 || error.status === 403);
    message(denied ? t("forbidden") : error instanceof ApiError && error.status === 404 ? t("noDefinition") : error.message);
    document.body.dataset.ready = denied ? "denied" : "error";
    setStatus("offline");
    return;
  }
  const definition = state.definition;
  state.levels = levelTable(definition);
  if (!state.levels.size) state.levels.set(UNKNOWN.id, UNKNOWN);
  for (const layer of definition.layers || []) state.layers.set(layer.type, layer);
  state.filter.types = new Set(state.layers.keys());
  state.map = new TownMap($("map"), config, definition, select);
  state.map.labelDistricts((feature) => pick(feature.properties?.name));
  renderTexts();
  $("district").addEventListener("change", (event) => { state.filter.district = event.target.value; refilter(); });
  $("level").addEventListener("change", (event) => { state.filter.minRank = Number(event.target.value); refilter(); });
  $("close").addEventListener("click", () => {
    state.selected = null;
    $("detail").hidden = true;
    state.map.map.invalidateSize();
  });
  for (const button of $("ranges").querySelectorAll("button")) {
    button.addEventListener("click", () => { state.range = button.dataset.range; drawHistory(); });
  }
  state.used = usedAttributes();
  const live = new LiveStream(state.api, [...state.layers.keys()], state.used, {
    state: setStatus,
    ready: () => snapshot().catch((error) => message(error.message)),
    resync: () => snapshot().catch((error) => message(error.message)),
    changes: (docs) => {
      const started = performance.now();
      state.stats.events += 1;
      for (const doc of docs) applyChange(doc);
      work(started);
    },
    denied: () => { message(t("forbidden")); setStatus("offline"); },
  });
  live.start();
  document.body.dataset.ready = "true";
  // A small window onto the page's state, for operators' checks and the browser tests.
  window.toshiDashboard = {
    state,
    painted: (id) => state.map.paintedColor(id),
    paintedAt: (lon, lat) => state.map.paintedAt([lat, lon]),
    level: (id) => state.entities.get(id)?.level.id,
    markerColor: (id) => state.map.markers.get(id)?.options.fillColor,
    count: () => state.map.markers.size,
    select,
    live,
  };
}

start().catch((error) => { message(error.message); document.body.dataset.ready = "error"; });
