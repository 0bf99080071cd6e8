//! Running the `warden` binary, the one way every test does it: [`warden`] makes the command (with a
//! clean environment), [`run`] runs it to completion and gives a [`Ran`], and a [`Process`] keeps it
//! running (a server, `warden up`, a device): lines awaited on its stdout or stderr with a deadline,
//! everything it writes kept for failure messages, SIGKILL for crash tests, SIGTERM for clean stops,
//! and a kill when dropped. [`RegistryProcess`] and [`CseProcess`] are `warden registry serve` and
//! `warden cse serve` on 127.0.0.1:0, their bound addresses read from their ready lines.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

/// The binary under test.
pub(crate) const WARDEN: &str = env!("CARGO_BIN_EXE_warden");

/// The admin token the test registries start with.
pub(crate) const ADMIN: &str = "it-admin-token-0123456789abcdef";

/// How long any one step of a process may take on a loaded machine (its start, a line, its exit);
/// reached only when a test fails.
pub(crate) const DEADLINE: Duration = Duration::from_secs(60);

/// How much of each of a process's streams is kept; lines beyond it are counted, not kept.
const KEPT_BYTES: usize = 8 << 20;

/// `command` without any of the caller's `WARDEN_*` variables, with quiet logs, no colours and no
/// input.
pub(crate) fn clean(command: &mut Command) -> &mut Command {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("WARDEN_") {
            command.env_remove(name);
        }
    }
    command.env("RUST_LOG", "warn").env("NO_COLOR", "1").stdin(Stdio::null())
}

/// `warden ARGS` with a [`clean`] environment.
pub(crate) fn warden(args: &[&str]) -> Command {
    let mut command = Command::new(WARDEN);
    clean(&mut command).args(args);
    command
}

/// Runs `command` to completion (within [`DEADLINE`]); what it did.
#[track_caller]
pub(crate) fn run(command: &mut Command) -> Ran {
    Process::spawn(command, None).finish("did not finish")
}

/// Like [`run`], writing `input` to the command's standard input.
#[track_caller]
pub(crate) fn run_with_input(command: &mut Command, input: &[u8]) -> Ran {
    Process::spawn(command, Some(input.to_vec())).finish("did not finish")
}

/// `p` as a `&str` (test paths are UTF-8).
pub(crate) fn path(p: &Path) -> &str {
    p.to_str().expect("a UTF-8 path")
}

/// What a finished command did.
pub(crate) struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    /// Asserts the exit code, showing the output when it is not the expected one.
    #[track_caller]
    pub(crate) fn exits(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    pub(crate) fn stdout_has(&self, text: &str) -> &Self {
        assert!(self.stdout.contains(text), "{text:?} not in stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    pub(crate) fn stderr_has(&self, text: &str) -> &Self {
        assert!(self.stderr.contains(text), "{text:?} not in stderr:\n{}", self.stderr);
        self
    }
}

/// One of a process's output streams.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl std::fmt::Display for Stream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        })
    }
}

/// What a process wrote, line by line (each with its line ending), as reader threads receive it.
struct Captured {
    lines: [Vec<String>; 2],
    bytes: [usize; 2],
    /// Lines not kept, past [`KEPT_BYTES`].
    dropped: [usize; 2],
    /// Whether the stream is still open (it closes when the process exits).
    open: [bool; 2],
}

struct Shared {
    captured: Mutex<Captured>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Captured> {
        self.captured.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Waits for a change until `end`; None once `end` is past.
    fn wait<'a>(&self, c: MutexGuard<'a, Captured>, end: Instant) -> Option<MutexGuard<'a, Captured>> {
        let left = end.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return None;
        }
        Some(self.changed.wait_timeout(c, left).unwrap_or_else(PoisonError::into_inner).0)
    }

    /// A thread that reads `pipe` to its end into `stream`'s lines, so that the process never blocks
    /// on a full pipe.
    fn keep(self: &Arc<Self>, pipe: impl Read + Send + 'static, stream: Stream) {
        let shared = Arc::clone(self);
        let i = stream as usize;
        std::thread::spawn(move || {
            let mut pipe = BufReader::new(pipe);
            let mut line = Vec::new();
            while let Ok(1..) = pipe.read_until(b'\n', &mut line) {
                let text = String::from_utf8_lossy(&line).into_owned();
                line.clear();
                let mut c = shared.lock();
                if c.bytes[i] + text.len() <= KEPT_BYTES {
                    c.bytes[i] += text.len();
                    c.lines[i].push(text);
                } else {
                    c.dropped[i] += 1;
                }
                drop(c);
                shared.changed.notify_all();
            }
            shared.lock().open[i] = false;
            shared.changed.notify_all();
        });
    }
}

/// A line without its line ending.
fn bare(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

/// A running child process, its stdout and stderr kept; killed when dropped.
pub(crate) struct Process {
    child: Child,
    /// The command line, for messages.
    name: String,
    shared: Arc<Shared>,
    /// How many lines of each stream [`Process::wait_line`] has gone past.
    read: [usize; 2],
}

impl Process {
    /// Starts `command` with its stdout and stderr piped to the harness.
    #[track_caller]
    pub(crate) fn start(command: &mut Command) -> Self {
        Self::spawn(command, None)
    }

    #[track_caller]
    fn spawn(command: &mut Command, input: Option<Vec<u8>>) -> Self {
        let program = Path::new(command.get_program()).file_name().unwrap_or_default().to_string_lossy().into_owned();
        let args: Vec<_> = command.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        let name = format!("{program} {}", args.join(" "));
        if input.is_some() {
            command.stdin(Stdio::piped());
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name} does not start: {e}"));
        let captured = Captured { lines: [vec![], vec![]], bytes: [0; 2], dropped: [0; 2], open: [true; 2] };
        let shared = Arc::new(Shared { captured: Mutex::new(captured), changed: Condvar::new() });
        shared.keep(child.stdout.take().expect("piped stdout"), Stream::Stdout);
        shared.keep(child.stderr.take().expect("piped stderr"), Stream::Stderr);
        if let Some(bytes) = input {
            let mut stdin = child.stdin.take().expect("piped stdin");
            // On a thread, so that a process that does not read cannot block the test; closed once
            // written.
            std::thread::spawn(move || {
                let _ = stdin.write_all(&bytes);
            });
        }
        Self { child, name, shared, read: [0; 2] }
    }

    /// Waits (within [`DEADLINE`]) for the next line on `stream` that is `wanted`, after the lines
    /// earlier waits went past; the line, without its line ending. Fails, with the process's output,
    /// at the deadline or when the stream ends first.
    #[track_caller]
    pub(crate) fn wait_line(&mut self, stream: Stream, wanted: impl Fn(&str) -> bool) -> String {
        let i = stream as usize;
        let end = Instant::now() + DEADLINE;
        let shared = Arc::clone(&self.shared);
        let why = {
            let mut c = shared.lock();
            loop {
                while let Some(line) = c.lines[i].get(self.read[i]) {
                    self.read[i] += 1;
                    if wanted(bare(line)) {
                        return bare(line).to_owned();
                    }
                }
                if c.dropped[i] > 0 {
                    break "its output went past what is kept";
                }
                if !c.open[i] {
                    break "the stream ended";
                }
                c = match shared.wait(c, end) {
                    Some(c) => c,
                    None => break "timed out",
                };
            }
        };
        self.fail(&format!("no awaited line on {stream} after line {} ({why})", self.read[i]))
    }

    /// The lines of `stream` up to the last one [`Process::wait_line`] went past.
    pub(crate) fn lines_read(&self, stream: Stream) -> Vec<String> {
        let i = stream as usize;
        self.shared.lock().lines[i][..self.read[i]].iter().map(|l| bare(l).to_owned()).collect()
    }

    /// All that `stream` has received so far.
    pub(crate) fn captured(&self, stream: Stream) -> String {
        self.shared.lock().lines[stream as usize].concat()
    }

    /// Both streams, for a failure message.
    fn output(&self) -> String {
        let c = self.shared.lock();
        let part = |s: Stream| {
            let i = s as usize;
            let cut =
                if c.dropped[i] > 0 { format!("({} more lines not kept)\n", c.dropped[i]) } else { String::new() };
            format!("--- {s} ---\n{}{cut}", c.lines[i].concat())
        };
        part(Stream::Stdout) + &part(Stream::Stderr)
    }

    /// SIGKILL: the process dies at once, with no shutdown of any kind; returns once it is gone.
    #[track_caller]
    pub(crate) fn crash(mut self) {
        self.child.kill().expect("SIGKILL sent");
        self.finish("did not die on SIGKILL");
    }

    /// SIGTERM, then waits (within [`DEADLINE`]) for the process to exit; what it did.
    #[track_caller]
    pub(crate) fn terminate(mut self) -> Ran {
        // The `kill` program: these tests forbid unsafe code, and std sends only SIGKILL. The child
        // is not reaped yet, so the pid is still its own.
        let sent = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        if !sent.as_ref().is_ok_and(ExitStatus::success) {
            self.fail(&format!("SIGTERM not sent: {sent:?}"));
        }
        self.finish("did not exit on SIGTERM")
    }

    /// Waits (within [`DEADLINE`]) for the process to exit; what it did. Fails with `what` and the
    /// output at the deadline.
    #[track_caller]
    fn finish(mut self, what: &str) -> Ran {
        match self.exit_status(Instant::now() + DEADLINE) {
            Some(status) => {
                let c = self.shared.lock();
                let text = |s: Stream| c.lines[s as usize].concat();
                Ran { code: status.code(), stdout: text(Stream::Stdout), stderr: text(Stream::Stderr) }
            }
            None => self.fail(what),
        }
    }

    /// Waits until `end` for both streams to close (they do when the process exits), then reaps the
    /// process; its status, or None at `end`.
    fn exit_status(&mut self, end: Instant) -> Option<ExitStatus> {
        let shared = Arc::clone(&self.shared);
        {
            let mut c = shared.lock();
            while c.open.iter().any(|&open| open) {
                c = shared.wait(c, end)?;
            }
        }
        // The pipes close as the process exits, so its status follows at once; polled to `end` all
        // the same, in case it closed them and lives on.
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(5)),
                _ => return None,
            }
        }
    }

    /// Kills the process, and panics with `what`, how it had ended and its output.
    #[track_caller]
    fn fail(&mut self, what: &str) -> ! {
        // Does nothing to a process that has exited already: its status stays the one it exited with.
        let _ = self.child.kill();
        let status = match self.exit_status(Instant::now() + Duration::from_secs(10)) {
            Some(status) => format!("it ended with {status}"),
            None => "it did not end when killed".to_owned(),
        };
        panic!("{}: {what}; {status}\n{}", self.name, self.output())
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A registry process: `warden registry serve --listen 127.0.0.1:0 --data DIR`.
pub(crate) struct RegistryProcess {
    process: Process,
    pub url: String,
}

impl RegistryProcess {
    /// Starts the registry on `data` and waits for its ready line.
    #[track_caller]
    pub(crate) fn start(data: &Path) -> Self {
        let mut process = Process::start(
            warden(&["registry", "serve", "--listen", "127.0.0.1:0", "--data", path(data)])
                .env("WARDEN_ADMIN_TOKEN", ADMIN)
                .env("RUST_LOG", "info"),
        );
        const READY: &str = "registry listening on ";
        let line = process.wait_line(Stream::Stderr, |l| l.contains(READY));
        let url = line.split(READY).nth(1).and_then(|rest| rest.split_whitespace().next()).unwrap_or_default();
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Self { url: url.to_owned(), process }
    }

    /// `warden ARGS` against this registry with `token`.
    fn command(&self, token: Option<&str>, args: &[&str]) -> Command {
        let mut c = warden(args);
        c.env("WARDEN_REGISTRY_URL", &self.url);
        if let Some(t) = token {
            c.env("WARDEN_TOKEN", t);
        }
        c
    }

    /// Runs `warden ARGS` against this registry with `token`.
    #[track_caller]
    pub(crate) fn run(&self, token: Option<&str>, args: &[&str]) -> Ran {
        run(&mut self.command(token, args))
    }

    /// Like [`run`](Self::run), writing `stdin` to the command.
    #[track_caller]
    pub(crate) fn run_with_stdin(&self, token: Option<&str>, args: &[&str], stdin: &[u8]) -> Ran {
        run_with_input(&mut self.command(token, args), stdin)
    }

    /// A client of the API with the admin token.
    pub(crate) fn admin(&self) -> registry::RegistryClient {
        registry::RegistryClient::new(&self.url, Some(ADMIN.to_owned())).expect("client")
    }

    /// What the registry logged so far.
    pub(crate) fn log(&self) -> String {
        self.process.captured(Stream::Stderr)
    }

    /// SIGKILL: see [`Process::crash`].
    #[track_caller]
    pub(crate) fn crash(self) {
        self.process.crash();
    }

    /// SIGTERM: see [`Process::terminate`].
    #[track_caller]
    pub(crate) fn terminate(self) -> Ran {
        self.process.terminate()
    }
}

/// A CSE process: `warden cse serve ARGS`, with the addresses of its ready line
/// (`CSE ready on http://ADDR[ and https://ADDR]`).
pub(crate) struct CseProcess {
    process: Process,
    pub http: String,
    pub https: Option<String>,
}

impl CseProcess {
    /// Starts `warden cse serve ARGS` and waits for its ready line.
    #[track_caller]
    pub(crate) fn start(args: &[&str]) -> Self {
        let mut process = Process::start(warden(&["cse", "serve"]).args(args));
        let line = process.wait_line(Stream::Stdout, |l| l.starts_with("CSE ready on "));
        let url = |scheme: &str| line.split_whitespace().find(|w| w.starts_with(scheme)).map(str::to_owned);
        let http = url("http://").expect("an HTTP URL in the ready line");
        Self { https: url("https://"), http, process }
    }

    /// SIGKILL: see [`Process::crash`].
    #[track_caller]
    pub(crate) fn crash(self) {
        self.process.crash();
    }
}

/// A valid profile for `app_id`.
pub(crate) fn profile(app_id: &str) -> serde_json::Value {
    serde_json::json!({
        "appId": app_id,
        "registrant": {"name": "Acme Devices Ltd", "contact": "security@acme.example"},
        "application": {"type": "thermostat", "class": "consumer", "name": "Acme Thermostat"},
        "security": {"keyStorage": "secure-element", "tlsVersions": ["1.3"], "firmwareSigned": true},
        "authentication": {"method": "none"},
        "communications": {"class": "periodic", "periodSeconds": 300, "bindings": ["http"]},
        "dataPrivacy": {"category": "personal", "sharing": "restricted", "allowedRecipients": ["Cehr*"]}
    })
}

// The harness itself.

#[test]
fn lines_are_awaited_in_order_on_either_stream_and_sigterm_gives_the_exit_status() {
    // The trap comes first: "three" is awaited before SIGTERM, so the shell has set it by then.
    let script = "trap 'exit 3' TERM; echo one; echo two >&2; echo three; while :; do sleep 0.05; done";
    let mut p = Process::start(clean(&mut Command::new("sh")).args(["-c", script]));
    assert_eq!(p.wait_line(Stream::Stderr, |l| l.starts_with('t')), "two");
    assert_eq!(p.wait_line(Stream::Stdout, |l| l.starts_with('t')), "three");
    assert_eq!(p.lines_read(Stream::Stdout), ["one", "three"]);
    assert_eq!(p.captured(Stream::Stderr), "two\n");
    let ran = p.terminate();
    ran.exits(3);
    assert_eq!((ran.stdout.as_str(), ran.stderr.as_str()), ("one\nthree\n", "two\n"));
}

#[test]
fn a_process_that_ends_before_its_ready_line_fails_at_once_with_its_output() {
    let started = Instant::now();
    let failed = std::panic::catch_unwind(|| CseProcess::start(&["--client-auth", "sometimes"]));
    let message = failed.err().and_then(|e| e.downcast::<String>().ok()).expect("a panic with a message");
    for part in ["warden cse serve --client-auth sometimes", "(the stream ended)", "exit status: 2", "'sometimes'"] {
        assert!(message.contains(part), "{part:?} not in {message}");
    }
    assert!(started.elapsed() < DEADLINE / 2, "it failed when the process ended, not at the deadline");
}
