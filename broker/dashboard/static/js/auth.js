// Sign-in with the town's OpenID Provider: authorization code flow with PKCE (RFC 7636,
// S256) for a public client; no secret in the page. The access token is kept in this tab's
// sessionStorage only, and sent to Toshi as a bearer token like any client's.
const KEY = "toshi.token";
const PENDING = "toshi.pkce";

function b64url(bytes) {
  return btoa(String.fromCharCode(...new Uint8Array(bytes))).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function random(size = 32) {
  return b64url(crypto.getRandomValues(new Uint8Array(size)));
}

async function discover(issuer) {
  const reply = await fetch(`${issuer.replace(/\/$/, "")}/.well-known/openid-configuration`);
  if (!reply.ok) throw new Error(`OpenID discovery failed: HTTP ${reply.status}`);
  return reply.json();
}

function redirectUri() {
  return `${location.origin}/dashboard`;
}

export function token() {
  const saved = JSON.parse(sessionStorage.getItem(KEY) || "null");
  if (!saved) return null;
  if (saved.expires && saved.expires < Date.now()) { sessionStorage.removeItem(KEY); return null; }
  return saved.access;
}

export function signOut() { sessionStorage.removeItem(KEY); }

export async function signIn(oidc) {
  const meta = await discover(oidc.issuer);
  const verifier = random(48);
  const state = random(16);
  const challenge = b64url(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  // Where the user was (tenant, dashboard) comes back with them.
  sessionStorage.setItem(PENDING, JSON.stringify({ verifier, state, back: location.search }));
  const params = new URLSearchParams({
    response_type: "code",
    client_id: oidc.clientId,
    redirect_uri: redirectUri(),
    scope: oidc.scope,
    state,
    code_challenge: challenge,
    code_challenge_method: "S256",
  });
  location.assign(`${meta.authorization_endpoint}?${params}`);
}

/** Finish a sign-in when the provider sent the browser back with a code; true if it did. */
export async function completeSignIn(oidc) {
  const here = new URLSearchParams(location.search);
  const code = here.get("code");
  if (!code || !oidc) return false;
  const pending = JSON.parse(sessionStorage.getItem(PENDING) || "null");
  sessionStorage.removeItem(PENDING);
  if (!pending || pending.state !== here.get("state")) throw new Error("sign-in state does not match");
  const meta = await discover(oidc.issuer);
  const reply = await fetch(meta.token_endpoint, {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({
      grant_type: "authorization_code",
      code,
      redirect_uri: redirectUri(),
      client_id: oidc.clientId,
      code_verifier: pending.verifier,
    }),
  });
  if (!reply.ok) throw new Error(`token request failed: HTTP ${reply.status}`);
  const body = await reply.json();
  const expires = body.expires_in ? Date.now() + body.expires_in * 1000 : null;
  sessionStorage.setItem(KEY, JSON.stringify({ access: body.access_token, expires }));
  history.replaceState(null, "", `/dashboard${pending.back || ""}`);
  return true;
}
