//! A server as a child process, for the e2e tests (`serve.rs`) and the benchmarks (which include
//! this file with `#[path]`): started without the caller's `VELFERD_*` variables, found by the
//! line in which it says where it listens, killed when dropped.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, ExitStatus, Stdio};

/// `velferd` (the build at `binary`) on `database_url` and a free port of 127.0.0.1, logging
/// warnings only, with none of this process's `VELFERD_*` variables: only what the caller adds.
pub fn velferd_command(binary: &str, database_url: &str) -> Command {
    let mut command = Command::new(binary);
    for (name, _) in std::env::vars() {
        if name.starts_with("VELFERD_") {
            command.env_remove(name);
        }
    }
    command.env("VELFERD_DATABASE_URL", database_url).env("VELFERD_BIND", "127.0.0.1:0").env("VELFERD_LOG", "warn");
    command
}

/// A running child process that serves HTTP.
pub struct Process {
    child: Child,
    /// Where it listens, `host:port`.
    pub addr: String,
}

impl Process {
    /// Starts `command` and returns once a line of its stdout contains `marker` followed by the
    /// address (`host:port`, with or without `http://`). Stdout is drained from then on, so the
    /// child never writes to a closed pipe; stderr goes where `command` says.
    pub fn start(mut command: Command, marker: &str) -> Process {
        let mut child = command.stdout(Stdio::piped()).spawn().unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("the server said where it listens").unwrap();
            if let Some(at) = line.find(marker) {
                let rest = line[at + marker.len()..].trim().trim_start_matches("http://");
                break rest.split(['/', ' ']).next().unwrap().to_string();
            }
        };
        std::thread::spawn(move || for _ in lines {});
        Process { child, addr }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// How the process ended, once it has ended by itself; `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    /// SIGKILL: no shutdown, no cleanup.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
