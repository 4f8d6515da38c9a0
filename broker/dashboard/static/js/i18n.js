// The page's words in Japanese and English; the definition gives its own (title, labels)
// as language maps ({"ja": "…", "en": "…"}), shown with `pick`.
const WORDS = {
  ja: {
    filters: "絞り込み", district: "地区", all: "すべて", minLevel: "警戒レベル", alerts: "警報・注意報",
    noAlerts: "発表中の警報はありません", live: "接続中", connecting: "接続しています…",
    offline: "切断（再接続します）", signin: "ログイン", signout: "ログアウト",
    publicView: "公開情報", forbidden: "この町のデータを見る権限がありません",
    noDefinition: "ダッシュボードの定義がありません", history: "履歴", noHistory: "履歴がありません",
    other: "English", observedAt: "観測時刻", level: "レベル", anyLevel: "すべて",
  },
  en: {
    filters: "Filters", district: "District", all: "All", minLevel: "Warning level", alerts: "Alerts",
    noAlerts: "No alerts in force", live: "Live", connecting: "Connecting…",
    offline: "Offline (reconnecting)", signin: "Sign in", signout: "Sign out",
    publicView: "Public view", forbidden: "You may not see this town's data",
    noDefinition: "This tenant has no dashboard definition", history: "History",
    noHistory: "No history", other: "日本語", observedAt: "Observed", level: "Level", anyLevel: "Any",
  },
};

let current = localStorage.getItem("toshi.lang") || (navigator.language.startsWith("ja") ? "ja" : "en");

export function lang() { return current; }

export function setLang(code) {
  current = WORDS[code] ? code : "en";
  localStorage.setItem("toshi.lang", current);
  document.documentElement.lang = current;
}

export function t(key) { return WORDS[current][key] ?? WORDS.en[key] ?? key; }

/** A language map's text in the current language (then English, then any). */
export function pick(map) {
  if (map == null) return "";
  if (typeof map === "string") return map;
  return map[current] ?? map.en ?? Object.values(map)[0] ?? "";
}

export function translate(root = document) {
  for (const el of root.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}
