//! veil-harness: several processes of one program on this machine, as veil's multi-party
//! benchmarks run them (`veil mpc bench`: two servers, a dealer and a sensor; `veil net bench`:
//! a coordinator and a fleet of nodes).
//!
//! A [`Fleet`] starts each member with its own arguments, writes the member's stderr to
//! `<dir>/<name>.log` and reads its stdout: every line that is a JSON object is an [`Event`]
//! (the member *signals* readiness, progress or its result there; nobody scrapes logs), other
//! lines are ignored. A member that exits unsuccessfully fails the fleet with the last line of
//! its log. Dropping the fleet kills and reaps every member still running, so a failed
//! benchmark leaves no process behind.
//!
//! Members announce events with [`emit`]: one JSON object per line, with an `"event"` key
//! naming it (see [`EVENT_KEY`]).

#![forbid(unsafe_code)]

use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::time::{Duration, Instant};

/// The key naming an event in the JSON objects members print.
pub const EVENT_KEY: &str = "event";

/// Errors of the harness.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A file, pipe or process operation failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// Why it failed.
        #[source]
        source: std::io::Error,
    },
    /// A member exited unsuccessfully.
    #[error("{name} exited with {status}: {last_line}")]
    Exited {
        /// The member.
        name: String,
        /// Its exit status.
        status: ExitStatus,
        /// The last line of its log (`no output` when empty).
        last_line: String,
    },
    /// A wait ran out of time.
    #[error("{what} did not happen within {seconds} s")]
    Timeout {
        /// What was awaited.
        what: String,
        /// The limit.
        seconds: u64,
    },
}

impl HarnessError {
    fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        HarnessError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Prints `fields` (a JSON object; other values are wrapped as `{"value": ...}`) with
/// `"event": name` on stdout as one line and flushes, for a parent [`Fleet`] to read.
pub fn emit(name: &str, fields: serde_json::Value) -> std::io::Result<()> {
    let mut object = match fields {
        serde_json::Value::Object(map) => map,
        other => {
            let mut map = serde_json::Map::new();
            map.insert("value".into(), other);
            map
        }
    };
    object.insert(EVENT_KEY.into(), serde_json::Value::String(name.into()));
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::Value::Object(object))?;
    out.flush()
}

/// A child's progress report: `progress` events (`done`, `total`) on stdout for a parent
/// [`Fleet`] when `events`, else a line `<label> done/total` on stderr about every 1 % of
/// the work (and at the end).
pub fn report_progress(events: bool, label: &str, done: usize, total: usize) {
    if events {
        let _ = emit(
            "progress",
            serde_json::json!({"done": done, "total": total}),
        );
    } else if done.is_multiple_of((total / 100).max(1)) || done == total {
        eprintln!("{label} {done}/{total}");
    }
}

/// A free TCP port on loopback (bound, read and released: another process may take it
/// before the member binds it, which a benchmark accepts).
pub fn free_loopback_addr() -> Result<SocketAddr, HarnessError> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| HarnessError::io("finding a free port on loopback", e))?;
    listener
        .local_addr()
        .map_err(|e| HarnessError::io("finding a free port on loopback", e))
}

/// One JSON object a member printed on its stdout.
#[derive(Clone, Debug, PartialEq)]
pub struct Event {
    /// The member that printed it.
    pub member: String,
    /// The object.
    pub value: serde_json::Value,
}

impl Event {
    /// The event's name (its `"event"` key), if it has one.
    pub fn name(&self) -> Option<&str> {
        self.value.get(EVENT_KEY)?.as_str()
    }
}

/// A Unix signal the harness can send to a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    /// SIGKILL: the member dies at once.
    Kill,
    /// SIGSTOP: the member stalls (its sockets stay open).
    Stop,
    /// SIGCONT: a stalled member goes on.
    Continue,
}

impl Signal {
    fn flag(self) -> &'static str {
        match self {
            Signal::Kill => "-KILL",
            Signal::Stop => "-STOP",
            Signal::Continue => "-CONT",
        }
    }
}

struct Member {
    name: String,
    child: Child,
    log: PathBuf,
    /// The process exited successfully.
    done: bool,
    /// Its stdout reached end of file: every event it printed has been received.
    drained: bool,
}

/// What a member's stdout reader sends.
enum Message {
    /// A JSON object the member printed.
    Event(Event),
    /// The member's stdout closed (index into the fleet's members).
    Closed(usize),
}

/// Processes started together; every one still running is killed when the fleet is dropped.
pub struct Fleet {
    program: PathBuf,
    dir: PathBuf,
    members: Vec<Member>,
    messages: Receiver<Message>,
    sender: Sender<Message>,
}

impl Fleet {
    /// A fleet of `program`'s processes whose logs go to `dir` (created).
    pub fn new(program: &Path, dir: &Path) -> Result<Self, HarnessError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| HarnessError::io(format!("creating {}", dir.display()), e))?;
        let (sender, messages) = channel();
        Ok(Fleet {
            program: program.to_path_buf(),
            dir: dir.to_path_buf(),
            members: Vec::new(),
            messages,
            sender,
        })
    }

    /// Starts member `name` (letters, digits, `-` and `_`) with `args`; its stderr goes to
    /// `<dir>/<name>.log`, its stdout's JSON lines become [`Event`]s.
    pub fn spawn(&mut self, name: &str, args: &[String]) -> Result<(), HarnessError> {
        let plain = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_');
        if name.is_empty() || !name.chars().all(plain) {
            let reason = "a member name is letters, digits, `-` and `_`";
            let source = std::io::Error::new(std::io::ErrorKind::InvalidInput, reason);
            return Err(HarnessError::io(format!("starting `{name}`"), source));
        }
        let log = self.dir.join(format!("{name}.log"));
        let err = std::fs::File::create(&log)
            .map_err(|e| HarnessError::io(format!("creating {}", log.display()), e))?;
        let mut child = Command::new(&self.program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .map_err(|e| HarnessError::io(format!("starting {name}"), e))?;
        let index = self.members.len();
        let drained = match child.stdout.take() {
            Some(stdout) => {
                let (member, sender) = (name.to_string(), self.sender.clone());
                std::thread::spawn(move || forward_events(stdout, &member, index, &sender));
                false
            }
            None => true,
        };
        self.members.push(Member {
            name: name.to_string(),
            child,
            log,
            done: false,
            drained,
        });
        Ok(())
    }

    /// The process id of member `name`.
    pub fn pid(&self, name: &str) -> Option<u32> {
        self.members
            .iter()
            .find(|m| m.name == name)
            .map(|m| m.child.id())
    }

    /// Sends `signal` to member `name` (with `kill(1)`); unknown members and members that
    /// already exited (their pid may belong to another process now) are skipped.
    pub fn signal(&self, name: &str, signal: Signal) -> Result<(), HarnessError> {
        match self.members.iter().find(|m| m.name == name && !m.done) {
            Some(m) => signal_pid(m.child.id(), signal),
            None => Ok(()),
        }
    }

    /// Checks every member: an unsuccessful exit is an error; returns whether all exited.
    pub fn poll(&mut self) -> Result<bool, HarnessError> {
        for m in &mut self.members {
            if m.done {
                continue;
            }
            let status = m
                .child
                .try_wait()
                .map_err(|e| HarnessError::io(format!("waiting for {}", m.name), e))?;
            match status {
                None => {}
                Some(s) if s.success() => m.done = true,
                Some(status) => {
                    m.done = true;
                    return Err(HarnessError::Exited {
                        name: m.name.clone(),
                        status,
                        last_line: last_line(&m.log),
                    });
                }
            }
        }
        Ok(self.members.iter().all(|m| m.done))
    }

    /// Waits until every member exited successfully and every event it printed was handed
    /// to `on_event` (in arrival order); the first unsuccessful exit ends the wait with its
    /// error.
    pub fn wait_all(&mut self, on_event: &mut dyn FnMut(&Event)) -> Result<(), HarnessError> {
        loop {
            let exited = self.poll()?;
            if exited && self.members.iter().all(|m| m.drained) {
                return Ok(());
            }
            if let Ok(message) = self.messages.recv_timeout(Duration::from_millis(20)) {
                self.take(message, on_event);
            }
        }
    }

    /// Hands an event on, or records that a member's stdout closed.
    fn take(&mut self, message: Message, on_event: &mut dyn FnMut(&Event)) {
        match message {
            Message::Event(e) => on_event(&e),
            Message::Closed(index) => {
                if let Some(m) = self.members.get_mut(index) {
                    m.drained = true;
                }
            }
        }
    }

    /// Waits up to `limit` for an event `wanted` accepts and returns it (events before it are
    /// dropped); fails when a member exits unsuccessfully first.
    pub fn wait_for(
        &mut self,
        what: &str,
        limit: Duration,
        wanted: &mut dyn FnMut(&Event) -> bool,
    ) -> Result<Event, HarnessError> {
        let start = Instant::now();
        loop {
            self.poll()?;
            match self.messages.recv_timeout(Duration::from_millis(20)) {
                Ok(Message::Event(e)) if wanted(&e) => return Ok(e),
                Ok(message) => self.take(message, &mut |_| {}),
                Err(RecvTimeoutError::Timeout | RecvTimeoutError::Disconnected) => {}
            }
            if start.elapsed() > limit {
                return Err(HarnessError::Timeout {
                    what: what.to_string(),
                    seconds: limit.as_secs(),
                });
            }
        }
    }

    /// Hands every event received and not yet taken to `on_event`.
    pub fn drain(&mut self, on_event: &mut dyn FnMut(&Event)) {
        while let Ok(message) = self.messages.try_recv() {
            self.take(message, on_event);
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        for m in &mut self.members {
            let _ = m.child.kill();
            let _ = m.child.wait();
        }
    }
}

/// Reads `stdout` line by line and forwards each JSON object as an event, then says that
/// member `index`'s stdout closed.
fn forward_events(
    stdout: std::process::ChildStdout,
    member: &str,
    index: usize,
    sender: &Sender<Message>,
) {
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if let Ok(value @ serde_json::Value::Object(_)) = serde_json::from_str(&line) {
            let event = Event {
                member: member.to_string(),
                value,
            };
            if sender.send(Message::Event(event)).is_err() {
                return;
            }
        }
    }
    let _ = sender.send(Message::Closed(index));
}

/// Sends `signal` to process `pid` with `kill(1)` (for a fault injected from another thread,
/// where the [`Fleet`] is not at hand; see [`Fleet::pid`]).
pub fn signal_pid(pid: u32, signal: Signal) -> Result<(), HarnessError> {
    Command::new("kill")
        .args([signal.flag(), &pid.to_string()])
        .status()
        .map_err(|e| HarnessError::io(format!("signalling process {pid}"), e))?;
    Ok(())
}

/// The last non-empty line of `log`, or `no output`.
fn last_line(log: &Path) -> String {
    std::fs::read_to_string(log)
        .ok()
        .and_then(|t| {
            t.lines()
                .rev()
                .find(|l| !l.trim().is_empty())
                .map(str::to_string)
        })
        .unwrap_or_else(|| "no output".into())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["-c".into(), script.into()]
    }

    #[test]
    fn events_arrive_and_a_failing_member_fails_the_fleet_with_its_log() {
        let dir = std::env::temp_dir().join(format!("veil-harness-{}", std::process::id()));
        let mut fleet = Fleet::new(Path::new("/bin/sh"), &dir).expect("fleet");
        fleet
            .spawn(
                "talker",
                &sh(r#"echo 'not json'; echo '{"event":"progress","done":1}'; echo '{"event":"ready"}'"#),
            )
            .expect("spawn");
        let ready = fleet
            .wait_for("ready", Duration::from_secs(10), &mut |e| {
                e.name() == Some("ready")
            })
            .expect("ready");
        assert_eq!(ready.member, "talker");
        fleet
            .spawn(
                "Failer",
                &sh("echo first >&2; echo 'the reason' >&2; exit 3"),
            )
            .expect("spawn");
        let err = fleet.wait_all(&mut |_| {}).expect_err("failer");
        let text = err.to_string();
        assert!(
            text.contains("Failer") && text.contains("the reason"),
            "{text}"
        );
        assert!(dir.join("Failer.log").is_file());
        assert!(
            fleet.spawn("../x", &sh("true")).is_err(),
            "a name is not a path"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_fleet_waits_for_all_and_kills_the_rest_on_drop() {
        let dir = std::env::temp_dir().join(format!("veil-harness-b-{}", std::process::id()));
        let mut fleet = Fleet::new(Path::new("/bin/sh"), &dir).expect("fleet");
        fleet
            .spawn("quick", &sh(r#"echo '{"event":"done"}'"#))
            .expect("spawn");
        let mut seen = Vec::new();
        fleet
            .wait_all(&mut |e| seen.push(e.name().map(str::to_string)))
            .expect("all");
        assert_eq!(seen, vec![Some("done".to_string())]);
        fleet.spawn("sleeper", &sh("sleep 600")).expect("spawn");
        let pid = fleet.pid("sleeper").expect("pid");
        let err = fleet
            .wait_for("nothing", Duration::from_millis(100), &mut |_| false)
            .expect_err("timeout");
        assert!(matches!(err, HarnessError::Timeout { .. }), "{err}");
        drop(fleet);
        let alive = Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stderr(Stdio::null())
            .status()
            .expect("kill -0");
        assert!(!alive.success(), "the sleeper outlived its fleet");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn emit_names_the_event_and_free_ports_are_usable() {
        let addr = free_loopback_addr().expect("port");
        assert!(addr.ip().is_loopback() && addr.port() > 0);
        let e = Event {
            member: "m".into(),
            value: serde_json::json!({"event": "progress", "done": 3}),
        };
        assert_eq!(e.name(), Some("progress"));
    }
}
