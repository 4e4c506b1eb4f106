// PM2 process file.
//   One process (ROLE=all):  pm2 start ecosystem.config.js --only websocket-streaming
//   The cluster profile:     PROFILE=cluster pm2 start ecosystem.config.js   (docs/SCALING.md)
//     INGESTORS (default 2: one leads, the others stand by) on INGEST_PORT, INGEST_PORT+1, ... (default 5041),
//     GATEWAYS (default 3) on GATEWAY_PORT, GATEWAY_PORT+1, ... (default 5031): the ports
//     docs/deploy/nginx.conf proxies to. Every process shares the Redis of REDIS_HOST/REDIS_PORT/REDIS_DB.
//     An ingestor that loses the leader lock exits; autorestart brings it back as a standby.
// Run `make install` first: it creates .venv, whose interpreter runs the service.
// PM2 evaluates this file in the `pm2` command's own process, so process.env below is that command's
// environment; the variables of that environment also reach the service (PORT, REDIS_DB, LOG_FILE...).
const os = require("os");
const path = require("path");

// PM2's capture of the service's stdout/stderr. PM2_OUT_FILE / PM2_ERROR_FILE move it (the PM2 test points
// them into its temporary directory so that it writes nothing into the checkout).
const logFile = (variable, name) => process.env[variable] || path.join(__dirname, "logs", name);

function whole(variable, fallback, low, high) {
  const value = Number(process.env[variable] || fallback);
  if (!Number.isInteger(value) || value < low || value > high) {
    throw new Error(`${variable}=${process.env[variable]} must be a whole number from ${low} to ${high}`);
  }
  return value;
}

// What every process of the service shares; `name` and `env` make one of them.
function app(name, env) {
  return {
    name,
    script: "app.py",
    cwd: __dirname,
    interpreter: path.join(__dirname, ".venv", "bin", "python"),
    exec_mode: "fork",
    instances: 1,
    autorestart: true,
    max_restarts: 10,
    restart_delay: 2000,
    // PM2 sends SIGINT on stop/restart/delete and SIGKILL after this many ms; the service's graceful
    // shutdown is bounded by SHUTDOWN_TIMEOUT (10 s), so keep this above it.
    kill_timeout: 15000,
    max_memory_restart: "1G",
    env: { PYTHONUNBUFFERED: "1", ...env },
    out_file: logFile("PM2_OUT_FILE", `${name}.out.log`),
    error_file: logFile("PM2_ERROR_FILE", `${name}.error.log`),
    merge_logs: true,
  };
}

function cluster() {
  const host = os.hostname();
  const ingestPort = whole("INGEST_PORT", 5041, 1, 65535);
  const gatewayPort = whole("GATEWAY_PORT", 5031, 1, 65535);
  const apps = [];
  for (let i = 1; i <= whole("INGESTORS", 2, 0, 100); i += 1) {
    apps.push(app(`websocket-streaming-ingest-${i}`,
      { ROLE: "ingest", NODE_ID: `${host}-ingest-${i}`, PORT: String(ingestPort + i - 1) }));
  }
  for (let i = 1; i <= whole("GATEWAYS", 3, 0, 100); i += 1) {
    apps.push(app(`websocket-streaming-gateway-${i}`,
      { ROLE: "gateway", NODE_ID: `${host}-gateway-${i}`, PORT: String(gatewayPort + i - 1) }));
  }
  return apps;
}

module.exports = {
  apps: process.env.PROFILE === "cluster" ? cluster() : [app("websocket-streaming", {})],
};
