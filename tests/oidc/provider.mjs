// A real OpenID Provider for tests/auth: `node provider.mjs AUDIENCE ROLES_JSON`.
//
// It listens on a free port of 127.0.0.1, then prints one line `READY <issuer>` and serves
// discovery, JWKS and the token endpoint until it is killed. One confidential client,
// `toshi-test` / `toshi-test-secret`, may use the client_credentials grant; its access tokens
// are JWTs (resourceIndicators: the audience is AUDIENCE) carrying the claim `toshi_roles`.
//
// With a third argument, `node provider.mjs AUDIENCE ROLES_JSON REDIRECT_URI`, it also has the
// dashboard's public client `toshi-dashboard` (authorization code with PKCE, no secret) sending
// users back to REDIRECT_URI, and its development login and consent pages (any login name).
import http from "node:http";
import { generateKeyPair, exportJWK } from "jose";
import Provider from "oidc-provider";

const [audience, rolesJson, dashboardRedirect] = process.argv.slice(2);
if (!audience || !rolesJson) {
  console.error("usage: node provider.mjs AUDIENCE ROLES_JSON");
  process.exit(2);
}
const roles = JSON.parse(rolesJson);

const { privateKey } = await generateKeyPair("RS256", { extractable: true });
const signingKey = { ...(await exportJWK(privateKey)), kid: "test-rs256", alg: "RS256", use: "sig" };

const server = http.createServer();
await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;

const clients = [
  {
    client_id: "toshi-test",
    client_secret: "toshi-test-secret",
    grant_types: ["client_credentials"],
    redirect_uris: [],
    response_types: [],
  },
];
if (dashboardRedirect) {
  clients.push({
    client_id: "toshi-dashboard",
    token_endpoint_auth_method: "none",
    grant_types: ["authorization_code"],
    response_types: ["code"],
    redirect_uris: [dashboardRedirect],
  });
}

const provider = new Provider(issuer, {
  clients,
  jwks: { keys: [signingKey] },
  cookies: { keys: ["only-for-tests-cookie-key"] },
  features: {
    devInteractions: { enabled: Boolean(dashboardRedirect) },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Tokens are for the broker even when the client names no resource (RFC 8707 §2).
      defaultResource: () => audience,
      // ...also at the token endpoint of the code flow, where the page names none either.
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: "ngsi-ld",
        audience,
        accessTokenFormat: "jwt",
        jwt: { sign: { alg: "RS256" } },
      }),
    },
  },
  extraTokenClaims: () => ({ toshi_roles: roles }),
});

server.on("request", provider.callback());
console.log(`READY ${issuer}`);
