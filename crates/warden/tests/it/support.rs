//! Running the `warden` binary: a registry started with `warden registry serve` on 127.0.0.1:0, and
//! the client subcommands against it.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

/// The binary under test.
pub(crate) const WARDEN: &str = env!("CARGO_BIN_EXE_warden");

/// The admin token the test registries start with.
pub(crate) const ADMIN: &str = "it-admin-token-0123456789abcdef";

/// A `warden` command with none of the caller's `WARDEN_*` variables, quiet logs, no colours.
pub(crate) fn warden() -> Command {
    let mut c = Command::new(WARDEN);
    for var in ["WARDEN_REGISTRY_URL", "WARDEN_TOKEN", "WARDEN_ADMIN_TOKEN"] {
        c.env_remove(var);
    }
    c.env("RUST_LOG", "warn").env("NO_COLOR", "1").stdin(Stdio::null());
    c
}

/// What a finished command did.
pub(crate) struct Ran {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    fn from(o: Output) -> Self {
        Self {
            code: o.status.code(),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }

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

/// A registry process: `warden registry serve --listen 127.0.0.1:0 --data DIR`.
pub(crate) struct RegistryProcess {
    child: Child,
    pub url: String,
    log: Arc<Mutex<String>>,
}

impl RegistryProcess {
    /// Starts the registry on `data` and waits for its ready line.
    pub(crate) fn start(data: &Path) -> Self {
        let mut child = warden()
            .args(["registry", "serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .env("WARDEN_ADMIN_TOKEN", ADMIN)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("warden starts");
        let stderr = child.stderr.take().expect("piped stderr");
        let log = Arc::new(Mutex::new(String::new()));
        let (ready, url) = mpsc::channel();
        let keep = Arc::clone(&log);
        // Reads the log until the process ends (so that it never blocks on a full pipe).
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                keep.lock().unwrap().push_str(&format!("{line}\n"));
                if let Some(rest) = line.split("registry listening on ").nth(1) {
                    let _ = ready.send(rest.split_whitespace().next().unwrap_or_default().to_owned());
                }
            }
        });
        let url = url.recv_timeout(Duration::from_secs(60)).unwrap_or_else(|_| {
            let _ = child.kill();
            panic!("no ready line from warden registry serve:\n{}", log.lock().unwrap())
        });
        assert!(url.starts_with("http://127.0.0.1:"), "{url}");
        Self { child, url, log }
    }

    /// Runs `warden ARGS` against this registry with `token`.
    pub(crate) fn run(&self, token: Option<&str>, args: &[&str]) -> Ran {
        self.run_with_stdin(token, args, None)
    }

    /// Like [`run`](Self::run), writing `stdin` to the command.
    pub(crate) fn run_with_stdin(&self, token: Option<&str>, args: &[&str], stdin: Option<&[u8]>) -> Ran {
        let mut c = warden();
        c.args(args).env("WARDEN_REGISTRY_URL", &self.url).stdout(Stdio::piped()).stderr(Stdio::piped());
        if let Some(t) = token {
            c.env("WARDEN_TOKEN", t);
        }
        if stdin.is_some() {
            c.stdin(Stdio::piped());
        }
        let mut child = c.spawn().expect("warden starts");
        if let Some(bytes) = stdin {
            child.stdin.take().expect("piped stdin").write_all(bytes).expect("stdin written");
        }
        Ran::from(child.wait_with_output().expect("warden finishes"))
    }

    /// A client of the API with the admin token.
    pub(crate) fn admin(&self) -> registry::RegistryClient {
        registry::RegistryClient::new(&self.url, Some(ADMIN.to_owned())).expect("client")
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the registry logged so far.
    pub(crate) fn log(&self) -> String {
        self.log.lock().unwrap().clone()
    }

    /// SIGKILL: the process dies at once, with no shutdown of any kind.
    pub(crate) fn crash(mut self) {
        self.child.kill().expect("the registry is killed");
        self.child.wait().expect("the registry is reaped");
    }

    /// Waits (up to `within`) for the process to exit by itself, and gives its exit code.
    pub(crate) fn wait_exit(mut self, within: Duration) -> Option<i32> {
        let deadline = std::time::Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("the registry's status") {
                return status.code();
            }
            assert!(std::time::Instant::now() < deadline, "the registry did not exit:\n{}", self.log());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RegistryProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
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
