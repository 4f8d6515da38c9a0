// A FIWARE IoT Agent for tests: `node agent.js BROKER_URL MQTT_URL JSONLD_CONTEXT`.
//
// iotagent-node-lib (the library every FIWARE IoT Agent is built on) speaking NGSI-LD to the
// context broker at BROKER_URL, with the southbound of the IoT Agent JSON over MQTT: a command is
// published as `{"<command>": <value>}` on `/<apikey>/<device_id>/cmd`, and the device answers
// `{"<command>": <result>}` on `/<apikey>/<device_id>/cmdexe`. (IoT Agent JSON itself is not on
// npm; these few lines are the part of it that carries commands.)
//
// It listens on a free port of 127.0.0.1 (provisioning API and context-provider endpoint), then
// prints one line `READY <url>` and runs until it is killed.
const net = require("node:net");
const iotAgentLib = require("iotagent-node-lib");
const mqtt = require("mqtt");

// The agent's own log goes to stderr: stdout carries only the READY line.
iotAgentLib.logModule.setStream(process.stderr);

const [brokerUrl, mqttUrl, jsonLdContext] = process.argv.slice(2);
if (!brokerUrl || !mqttUrl || !jsonLdContext) {
  console.error("usage: node agent.js BROKER_URL MQTT_URL JSONLD_CONTEXT");
  process.exit(2);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const { port } = probe.address();
      probe.close(() => resolve(port));
    });
  });
}

function call(fn, ...args) {
  return new Promise((resolve, reject) =>
    fn(...args, (error, result) => (error ? reject(error) : resolve(result))),
  );
}

function fail(error) {
  console.error(error);
  process.exit(1);
}

async function main() {
  const port = await freePort();
  const providerUrl = `http://127.0.0.1:${port}`;
  const client = mqtt.connect(mqttUrl, { clientId: `toshi-test-iotagent-${process.pid}` });
  await new Promise((resolve, reject) => {
    client.once("connect", resolve);
    client.once("error", reject);
  });
  await client.subscribeAsync("/+/+/cmdexe", { qos: 1 });

  await call(iotAgentLib.activate, {
    logLevel: process.env.IOTA_LOG_LEVEL || "FATAL",
    contextBroker: { url: brokerUrl, ngsiVersion: "ld", jsonLdContext },
    server: { port, host: "127.0.0.1", ldSupport: { null: true, datasetId: true, merge: false } },
    deviceRegistry: { type: "memory" },
    types: {},
    service: "toshi",
    subservice: "/",
    providerUrl,
    defaultResource: "/iot/json",
  });

  // The northbound half: the broker forwards an update of a command attribute here.
  iotAgentLib.setCommandHandler((id, type, service, subservice, commands, callback) => {
    iotAgentLib.getDeviceByName(id, service, subservice, async (error, device) => {
      if (error) {
        callback(error);
        return;
      }
      try {
        for (const command of commands) {
          // PENDING first: the device may answer before a later update would land.
          await call(iotAgentLib.setCommandResult, device.name, "/iot/json", device.apikey,
            command.name, "", "PENDING", device);
          const topic = `/${device.apikey}/${device.id}/cmd`;
          await client.publishAsync(topic, JSON.stringify({ [command.name]: command.value }), { qos: 1 });
        }
        callback();
      } catch (failure) {
        callback(failure);
      }
    });
  });

  // The southbound half: the device's result goes into the entity as <command>_status/_info.
  client.on("message", (topic, payload) => {
    const [, apikey, deviceId] = topic.split("/");
    let results;
    try {
      results = JSON.parse(payload.toString());
    } catch {
      console.error(`not JSON on ${topic}`);
      return;
    }
    iotAgentLib.getDevicesByAttribute("id", deviceId, undefined, undefined, (error, devices) => {
      const device = (devices || []).find((each) => each.apikey === apikey);
      if (error || !device) {
        console.error(`no device ${deviceId} with apikey ${apikey}`);
        return;
      }
      for (const [name, result] of Object.entries(results)) {
        iotAgentLib.setCommandResult(device.name, "/iot/json", apikey, name, result, "OK", device,
          (failure) => failure && console.error(`command result of ${name}: ${failure}`));
      }
    });
  });

  console.log(`READY ${providerUrl}`);
}

main().catch(fail);
