//! Running one hostile case: the `veil` binary in a fresh directory holding the case's files,
//! under an address-space cap, with its peak memory (its own `VmHWM`, polled) and wall time
//! measured, and its outcome judged: a panic, a signal (SIGABRT included), a hang, an exit
//! code other than 0 or 2, an exit 2 whose last line is not a `veil:` error (veil's errors
//! cannot span lines, `one_line` joins them; progress and log lines may come before), or
//! memory above the bound is a failure.
//! Peak memory is the process's own `VmHWM`, polled while it runs (see [`wait_within`]).

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a case may end in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expect {
    /// Exit 2 with a one-line error: the input is bad.
    Refused,
    /// Exit 0, or exit 2 with a one-line error (a mutation may leave the input valid).
    Either,
    /// Exit 0: the unmutated seed of a family, so that mutations start from valid input.
    Accepted,
}

/// A check of the case's directory after the run (e.g. nothing written outside it).
pub type AfterCheck = fn(&Path) -> Result<(), String>;

/// A hostile peer run beside the process: gets the case's directory and the address the
/// process listens on (its `{port}` argument); `Err` when it could not do its part (the case
/// then fails: a case whose hostile bytes never arrived tested nothing).
pub type Client =
    std::sync::Arc<dyn Fn(&Path, std::net::SocketAddr) -> Result<(), String> + Send + Sync>;

/// One hostile case for the binary.
pub struct Case {
    /// The parser or command family it targets.
    pub family: &'static str,
    /// What it does, for the report.
    pub name: String,
    /// Arguments after `veil`.
    pub args: Vec<String>,
    /// Files to create in the case's directory (relative path, bytes).
    pub files: Vec<(String, Vec<u8>)>,
    /// Symbolic links to create (relative path, target).
    pub links: Vec<(String, PathBuf)>,
    /// What it may end in.
    pub expect: Expect,
    /// A check after the run.
    pub after: Option<AfterCheck>,
    /// A peer to run against the process; `{port}` in the arguments becomes a free port.
    pub client: Option<Client>,
    /// Text an exit 2 must mention (e.g. the misbehaving peer), so that an unrelated failure
    /// (a timeout, a port taken) cannot pass for the refusal the case is about.
    pub refusal_names: Option<&'static str>,
    /// A limit on the process's open files (`RLIMIT_NOFILE`), to run a server out of them.
    pub fd_limit: Option<u64>,
}

impl Case {
    /// A case with no files.
    pub fn new(
        family: &'static str,
        name: impl Into<String>,
        args: &[&str],
        expect: Expect,
    ) -> Self {
        Case {
            family,
            name: name.into(),
            args: args.iter().map(|a| a.to_string()).collect(),
            files: Vec::new(),
            links: Vec::new(),
            expect,
            after: None,
            client: None,
            refusal_names: None,
            fd_limit: None,
        }
    }

    /// Adds a file.
    pub fn file(mut self, path: &str, bytes: impl Into<Vec<u8>>) -> Self {
        self.files.push((path.to_string(), bytes.into()));
        self
    }
}

/// Bounds every case runs under.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Wall time before the process is killed and the case fails as a hang.
    pub time: Duration,
    /// Largest peak resident memory a case may reach (bytes).
    pub memory: u64,
    /// Address-space cap set on the process (bytes): an unbounded allocation fails (and
    /// aborts, which fails the case) instead of taking the machine's memory.
    pub address_space: u64,
}

/// How a case ended.
#[derive(Clone, Debug)]
pub struct Outcome {
    /// Family of the case.
    pub family: &'static str,
    /// Name of the case.
    pub name: String,
    /// `None` when it passed; why it failed otherwise.
    pub failure: Option<String>,
    /// Exit code, if it exited.
    pub exit: Option<i32>,
    /// Wall time.
    pub wall: Duration,
    /// Peak resident memory (bytes).
    pub max_rss: u64,
}

/// Runs `case` with `veil` in directory `dir` (created, and filled with the case's files).
pub fn run_case(veil: &Path, dir: &Path, case: &Case, limits: Limits) -> Outcome {
    let mut out = Outcome {
        family: case.family,
        name: case.name.clone(),
        failure: None,
        exit: None,
        wall: Duration::ZERO,
        max_rss: 0,
    };
    if let Err(e) = prepare(dir, case) {
        out.failure = Some(format!("setting up the case: {e}"));
        return out;
    }
    let (stdout, stderr) = (dir.join("stdout.txt"), dir.join("stderr.txt"));
    let (Ok(so), Ok(se)) = (
        std::fs::File::create(&stdout),
        std::fs::File::create(&stderr),
    ) else {
        out.failure = Some("cannot create output files".into());
        return out;
    };
    let cap = limits.address_space;
    let fds = case.fd_limit;
    let addr = match veil_harness::free_loopback_addr() {
        Ok(a) => a,
        Err(e) => {
            out.failure = Some(format!("no free port: {e}"));
            return out;
        }
    };
    let args: Vec<String> = case
        .args
        .iter()
        .map(|a| a.replace("{port}", &addr.port().to_string()))
        .collect();
    let mut cmd = Command::new(veil);
    cmd.args(&args)
        .current_dir(dir)
        .env("VEIL_DATA", dir.join("data"))
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(so)
        .stderr(se);
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            let as_limit = libc::rlimit {
                rlim_cur: cap,
                rlim_max: cap,
            };
            let no_core = libc::rlimit {
                rlim_cur: 0,
                rlim_max: 0,
            };
            if libc::setrlimit(libc::RLIMIT_AS, &as_limit) != 0
                || libc::setrlimit(libc::RLIMIT_CORE, &no_core) != 0
            {
                return Err(std::io::Error::last_os_error());
            }
            if let Some(n) = fds {
                let files = libc::rlimit {
                    rlim_cur: n,
                    rlim_max: n,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &files) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            out.failure = Some(format!("spawning veil: {e}"));
            return out;
        }
    };
    let peer = case.client.clone().map(|client| {
        let dir = dir.to_path_buf();
        std::thread::spawn(move || client(&dir, addr))
    });
    let (status, rss) = wait_within(child.id() as libc::pid_t, limits.time);
    // The process's time; the peer may linger on its own timeouts after the process ended.
    out.wall = started.elapsed();
    if let Some(peer) = peer {
        let why = match peer.join() {
            Ok(Ok(())) => None,
            Ok(Err(why)) => Some(format!("the hostile peer could not do its part: {why}")),
            Err(_) => Some("the hostile peer panicked".to_string()),
        };
        if why.is_some() {
            out.failure = why;
            return out;
        }
    }
    out.max_rss = rss;
    let err_text = std::fs::read_to_string(&stderr).unwrap_or_default();
    let out_text = std::fs::read_to_string(&stdout).unwrap_or_default();
    out.failure = judge(status, &err_text, case.expect, rss, limits)
        .and_then(|()| finite_results(status, &out_text))
        .and_then(|()| names_the_refusal(status, &err_text, case.refusal_names))
        .err()
        .or_else(|| case.after.and_then(|check| check(dir).err()));
    if let Status::Exited(code) = status {
        out.exit = Some(code);
    }
    out
}

fn prepare(dir: &Path, case: &Case) -> std::io::Result<()> {
    std::fs::create_dir_all(dir.join("data"))?;
    for (path, bytes) in &case.files {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(p, bytes)?;
    }
    for (path, target) in &case.links {
        let p = dir.join(path);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::os::unix::fs::symlink(target, p)?;
    }
    Ok(())
}

#[derive(Clone, Copy, Debug)]
enum Status {
    Exited(i32),
    Signalled(i32),
    Hung,
    Lost,
}

/// The process's own peak resident memory so far (bytes): `VmHWM` of its current address
/// space, which exec starts afresh.
fn hwm(pid: libc::pid_t) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// Waits for `pid` up to `limit` (then kills it); its status and peak resident memory.
///
/// The peak is the largest `VmHWM` read while it runs, every millisecond or five. `wait4`'s
/// `ru_maxrss` cannot be used alone: on Linux it also counts the parent's resident pages at
/// the fork (the forked copy of the test's address space), so it reads the test's size, not
/// the case's. A high-water mark only grows, so polling misses at most what a process
/// allocates in its last few milliseconds, far less than the bound (and the address-space cap
/// stops anything larger).
fn wait_within(pid: libc::pid_t, limit: Duration) -> (Status, u64) {
    let deadline = Instant::now() + limit;
    let mut sleep = Duration::from_millis(1);
    let mut hung = false;
    let mut peak = 0;
    loop {
        let mut status = 0;
        let flags = if hung { 0 } else { libc::WNOHANG };
        // SAFETY: pid is our child and `status` a live local.
        let r = unsafe { libc::waitpid(pid, &mut status, flags) };
        if r == pid {
            let s = if hung {
                Status::Hung
            } else if libc::WIFEXITED(status) {
                Status::Exited(libc::WEXITSTATUS(status))
            } else if libc::WIFSIGNALED(status) {
                Status::Signalled(libc::WTERMSIG(status))
            } else {
                Status::Lost
            };
            return (s, peak);
        }
        if r < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return (Status::Lost, peak);
        }
        if let Some(h) = hwm(pid) {
            peak = peak.max(h);
        }
        if Instant::now() >= deadline && !hung {
            // SAFETY: signalling our own child.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            hung = true;
            continue;
        }
        std::thread::sleep(sleep);
        sleep = (sleep * 2).min(Duration::from_millis(5));
    }
}

fn judge(
    status: Status,
    stderr: &str,
    expect: Expect,
    rss: u64,
    limits: Limits,
) -> Result<(), String> {
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    let last = lines.last().copied().unwrap_or("");
    if stderr.contains("internal error") || stderr.contains("panicked at") {
        return Err(format!("panic: {last}"));
    }
    match status {
        Status::Hung => return Err(format!("hang: killed after {:?}", limits.time)),
        Status::Signalled(s) => return Err(format!("killed by signal {s}: {last}")),
        Status::Lost => return Err("lost the process".into()),
        Status::Exited(0) if expect == Expect::Refused => {
            return Err("accepted an input it must refuse".into());
        }
        Status::Exited(0) => {}
        Status::Exited(2) if expect == Expect::Accepted => {
            return Err(format!("refused a valid seed: {last}"));
        }
        Status::Exited(2) => {
            if !last.starts_with("veil: ") {
                return Err(format!("exit 2 without a `veil:` error line: {last:?}"));
            }
        }
        Status::Exited(c) => return Err(format!("exit code {c}: {last}")),
    }
    if rss > limits.memory {
        return Err(format!(
            "peak memory {} MiB above the bound of {} MiB",
            rss >> 20,
            limits.memory >> 20
        ));
    }
    Ok(())
}

/// An exit 2 of a case about one refusal must name it in its error line.
fn names_the_refusal(status: Status, stderr: &str, wanted: Option<&str>) -> Result<(), String> {
    let last = stderr
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("");
    match (status, wanted) {
        (Status::Exited(2), Some(w)) if !last.contains(w) => {
            Err(format!("exit 2 for another reason than `{w}`: {last}"))
        }
        _ => Ok(()),
    }
}

/// A successful run must not report NaN (a NaN SSIM reads as "no leak" wherever results are
/// compared). An infinite PSNR of identical images is a right answer.
fn finite_results(status: Status, stdout: &str) -> Result<(), String> {
    let reported_nan = stdout
        .split(|c: char| !c.is_ascii_alphanumeric())
        .any(|w| w == "NaN");
    match status {
        Status::Exited(0) if reported_nan => Err(format!(
            "reported a non-finite number: {}",
            stdout.lines().find(|l| l.contains("NaN")).unwrap_or("")
        )),
        _ => Ok(()),
    }
}

/// Runs `cases` on `workers` threads, each in its own directory under `root`; outcomes in
/// case order.
pub fn run_all(
    veil: &Path,
    root: &Path,
    cases: &[Case],
    limits: Limits,
    workers: usize,
) -> Vec<Outcome> {
    let next = std::sync::atomic::AtomicUsize::new(0);
    let results = std::sync::Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..workers.max(1) {
            s.spawn(|| {
                loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    let Some(case) = cases.get(i) else { break };
                    let dir = root.join(format!("case-{i:05}"));
                    let outcome = run_case(veil, &dir, case, limits);
                    if outcome.failure.is_none() {
                        let _ = std::fs::remove_dir_all(&dir);
                    }
                    if let Ok(mut r) = results.lock() {
                        r.push((i, outcome));
                    }
                }
            });
        }
    });
    let mut r = results.into_inner().unwrap_or_default();
    r.sort_by_key(|(i, _)| *i);
    r.into_iter().map(|(_, o)| o).collect()
}
