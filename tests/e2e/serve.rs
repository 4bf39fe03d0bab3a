//! `velferd serve` as a process of its own on a given database, as an operator runs it: for
//! what several processes share (live updates, webhook leases). Killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use crate::support::{AUDIT_KEY, OPERATOR_ORG, SECRET};

pub struct Server {
    child: Child,
    /// Where it listens, `http://host:port`.
    pub base: String,
}

impl Server {
    /// Starts `velferd serve` on `database_url` with the test servers' settings and `extra`
    /// (none of the caller's `VELFERD_*` variables); returns once it says where it listens.
    pub fn start(database_url: &str, extra: &[(&'static str, String)]) -> Server {
        let mut command = Command::new(env!("CARGO_BIN_EXE_velferd"));
        for (name, _) in std::env::vars() {
            if name.starts_with("VELFERD_") {
                command.env_remove(name);
            }
        }
        command
            .env("VELFERD_DATABASE_URL", database_url)
            .env("VELFERD_BIND", "127.0.0.1:0")
            .env("VELFERD_JWT_SECRET", SECRET)
            .env("VELFERD_AUDIT_KEY", AUDIT_KEY)
            .env("VELFERD_OPERATOR_ORG_NUMBER", OPERATOR_ORG)
            .env("VELFERD_DB_MAX_CONNECTIONS", "4")
            .env("VELFERD_LOG", "warn");
        for (name, value) in extra {
            command.env(name, value);
        }
        let mut child = command.arg("serve").stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let line = lines.next().and_then(Result::ok).unwrap_or_default();
        let base =
            line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("first line: {line:?}")).to_string();
        // Keep draining stdout so the server never writes to a closed pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, base }
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        self.base.trim_start_matches("http://")
    }

    /// How the process ended, once it has ended by itself (at a failpoint); `None` while it runs.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// SIGKILL: no shutdown, no cleanup.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
