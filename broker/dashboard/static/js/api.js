// The page's only way to data: the NGSI-LD API of the Toshi that served it (GS CIM 009),
// with the tenant header and the signed-in (or public) credential, like any other client.
const API = "/ngsi-ld/v1";
const PAGE = 1000; // the broker's largest page (TOSHI_LIMITS__MAX_PAGE_SIZE default)

export class ApiError extends Error {
  constructor(status, problem) {
    super(problem?.detail || problem?.title || `HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }
}

export class Api {
  constructor(tenant, token) {
    this.tenant = tenant;
    this.token = token;
  }

  headers(extra = {}) {
    const headers = { Accept: "application/json", ...extra };
    if (this.tenant) headers["NGSILD-Tenant"] = this.tenant;
    if (this.token) headers.Authorization = `Bearer ${this.token}`;
    return headers;
  }

  async get(path, params = {}) {
    const query = new URLSearchParams(params).toString();
    const reply = await fetch(`${API}${path}${query ? "?" + query : ""}`, { headers: this.headers() });
    if (!reply.ok) {
      let problem = null;
      try { problem = await reply.json(); } catch { /* not JSON */ }
      throw new ApiError(reply.status, problem);
    }
    return reply.json();
  }

  entity(id, params = {}) {
    return this.get(`/entities/${encodeURIComponent(id)}`, params);
  }

  /** Every entity of `type`, page by page (normalized, with modifiedAt for ordering). */
  async entitiesOfType(type) {
    const all = [];
    for (let offset = 0; ; offset += PAGE) {
      const page = await this.get("/entities", { type, limit: PAGE, offset, options: "sysAttrs" });
      all.push(...page);
      if (page.length < PAGE) return all;
    }
  }

  /** The Temporal API's aggregated representation (§4.5.19): per period `[avg, start, end]`. */
  async aggregatedHistory(id, attr, since, period) {
    const body = await this.get(`/temporal/entities/${encodeURIComponent(id)}`, {
      attrs: attr,
      options: "aggregatedValues",
      aggrMethods: "avg",
      aggrPeriodDuration: period,
      timerel: "after",
      timeAt: since.toISOString(),
    });
    let member = body[attr];
    if (Array.isArray(member)) member = member.find((item) => !item.datasetId) || member[0];
    return (member?.avg || []).filter((triple) => triple[0] !== null);
  }
}
