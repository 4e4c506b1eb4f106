// PM2 process file: pm2 start ecosystem.config.js --only websocket-streaming
// Run `make install` first: it creates .venv, whose interpreter runs the service.
// PM2 evaluates this file in the `pm2` command's own process, so process.env below is that command's
// environment; the variables of that environment also reach the service (PORT, REDIS_DB, LOG_FILE...).
const path = require("path");

// PM2's capture of the service's stdout/stderr. PM2_OUT_FILE / PM2_ERROR_FILE move it (the PM2 test points
// them into its temporary directory so that it writes nothing into the checkout).
const logFile = (variable, name) => process.env[variable] || path.join(__dirname, "logs", name);

module.exports = {
  apps: [
    {
      name: "websocket-streaming",
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
      env: {
        PYTHONUNBUFFERED: "1",
      },
      out_file: logFile("PM2_OUT_FILE", "websocket-streaming.out.log"),
      error_file: logFile("PM2_ERROR_FILE", "websocket-streaming.error.log"),
      merge_logs: true,
    },
  ],
};
