// PM2 process file: pm2 start ecosystem.config.js --only websocket-streaming
// Run `make install` first: it creates .venv, whose interpreter runs the service.
const path = require("path");

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
      kill_timeout: 15000,
      max_memory_restart: "1G",
      env: {
        PYTHONUNBUFFERED: "1",
      },
      out_file: path.join(__dirname, "logs", "websocket-streaming.out.log"),
      error_file: path.join(__dirname, "logs", "websocket-streaming.error.log"),
      merge_logs: true,
    },
  ],
};
