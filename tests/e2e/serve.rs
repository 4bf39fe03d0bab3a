//! `velferd serve` as a process of its own on a given database, as an operator runs it: for
//! what several processes share (live updates, webhook leases). Killed when dropped.

use std::process::Stdio;

use crate::process::{Process, velferd_command};
use crate::support::{AUDIT_KEY, OPERATOR_ORG, SECRET};

pub struct Server {
    process: Process,
    /// Where it listens, `http://host:port`.
    pub base: String,
}

impl Server {
    /// Starts `velferd serve` on `database_url` with the test servers' settings and `extra`
    /// (none of the caller's `VELFERD_*` variables); returns once it says where it listens.
    pub fn start(database_url: &str, extra: &[(&'static str, String)]) -> Server {
        let mut command = velferd_command(env!("CARGO_BIN_EXE_velferd"), database_url);
        command
            .env("VELFERD_JWT_SECRET", SECRET)
            .env("VELFERD_AUDIT_KEY", AUDIT_KEY)
            .env("VELFERD_OPERATOR_ORG_NUMBER", OPERATOR_ORG)
            .env("VELFERD_DB_MAX_CONNECTIONS", "4");
        for (name, value) in extra {
            command.env(name, value);
        }
        command.arg("serve").stderr(Stdio::null());
        let process = Process::start(command, "listening on ");
        let base = format!("http://{}", process.addr);
        Server { process, base }
    }

    /// `host:port`.
    pub fn addr(&self) -> &str {
        &self.process.addr
    }

    /// How the process ended, once it has ended by itself (at a failpoint); `None` while it runs.
    pub fn exited(&mut self) -> Option<std::process::ExitStatus> {
        self.process.exited()
    }

    /// SIGKILL: no shutdown, no cleanup.
    pub fn kill(self) {
        self.process.kill()
    }
}
