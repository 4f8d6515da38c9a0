// A real OpenID Provider for tests/auth: `node provider.mjs AUDIENCE ROLES_JSON`.
//
// It listens on a free port of 127.0.0.1, then prints one line `READY <issuer>` and serves
// discovery, JWKS and the token endpoint until it is killed. One confidential client,
// `toshi-test` / `toshi-test-secret`, may use the client_credentials grant; its access tokens
// are JWTs (resourceIndicators: the audience is AUDIENCE) carrying the claim `toshi_roles`.
import http from "node:http";
import { generateKeyPair, exportJWK } from "jose";
import Provider from "oidc-provider";

const [audience, rolesJson] = process.argv.slice(2);
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

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: "toshi-test",
      client_secret: "toshi-test-secret",
      grant_types: ["client_credentials"],
      redirect_uris: [],
      response_types: [],
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: ["only-for-tests-cookie-key"] },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      // Tokens are for the broker even when the client names no resource (RFC 8707 §2).
      defaultResource: () => audience,
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
