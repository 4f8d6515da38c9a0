// Warning levels from the dashboard definition: which level a value reaches, and its colour.
// A layer names its attribute and either numeric thresholds (the highest one reached wins,
// as river gauges are read against their standby / caution / evacuation / danger lines)
// or a mapping of text values (an Alert's severity) to levels.

export const UNKNOWN = { id: "unknown", color: "#8a8f98", rank: -1, label: { ja: "不明", en: "Unknown" } };

export function levelTable(definition) {
  const table = new Map();
  (definition.levels || []).forEach((level, rank) => table.set(level.id, { ...level, rank }));
  return table;
}

/** The level `value` reaches in `layer`, as an entry of `table` (UNKNOWN without a value). */
export function levelOf(layer, value, table) {
  if (value === undefined || value === null) return UNKNOWN;
  if (layer.values) return table.get(layer.values[String(value)]) || UNKNOWN;
  if (typeof value !== "number") return UNKNOWN;
  let reached = table.get(layer.base || "normal") || UNKNOWN;
  for (const threshold of layer.thresholds || []) {
    if (value >= threshold.value) reached = table.get(threshold.level) || reached;
  }
  return reached;
}
