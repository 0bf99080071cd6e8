//! `warden up` as a newcomer meets it: started on free ports, it prints its addresses and commands
//! to paste; the commands are run as printed (in `sh`, with this build's `warden` on the PATH) and
//! do what the text says. `warden decisions` and `warden device run` are driven against it too.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_warden");
/// Long enough for any step on a loaded machine; reached only when a test fails.
const DEADLINE: Duration = Duration::from_secs(60);

/// A child process whose stdout lines arrive on a channel; killed when dropped.
struct Proc {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Proc {
    fn spawn(cmd: &mut Command) -> Self {
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("spawn");
        let out = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for l in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        Self { child, lines, seen: Vec::new() }
    }

    /// Reads lines until one satisfies `pred` (panics at the deadline); returns it.
    fn until(&mut self, pred: impl Fn(&str) -> bool) -> String {
        let end = Instant::now() + DEADLINE;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if pred(&l) {
                        return l;
                    }
                }
                Err(e) => panic!("no such line ({e}); got:\n{}", self.seen.join("\n")),
            }
        }
    }

    /// SIGTERM, then waits for a clean exit.
    fn terminate(mut self) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
        let end = Instant::now() + DEADLINE;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                assert!(status.success(), "stopped cleanly on SIGTERM: {status}");
                return;
            }
            assert!(Instant::now() < end, "did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn warden(args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args)
        .env_remove("WARDEN_ADMIN_TOKEN")
        .env_remove("WARDEN_TOKEN")
        .env_remove("WARDEN_REGISTRY_URL")
        .env("RUST_LOG", "warn");
    c
}

/// `warden up` on free ports in `data`, until its welcome text is printed; the text's lines.
fn up(data: &Path) -> (Proc, Vec<String>) {
    let d = data.to_str().unwrap();
    let mut p = Proc::spawn(&mut warden(&[
        "up",
        "--data",
        d,
        "--listen",
        "127.0.0.1:0",
        "--listen-tls",
        "127.0.0.1:0",
        "--registry-listen",
        "127.0.0.1:0",
    ]));
    p.until(|l| l.starts_with("  warden decisions"));
    let text = p.seen.clone();
    (p, text)
}

/// The value after `label` on the welcome line that starts with it.
fn field<'a>(text: &'a [String], label: &str) -> &'a str {
    let l = text.iter().find(|l| l.trim_start().starts_with(label)).unwrap_or_else(|| panic!("no {label}"));
    l.trim_start()[label.len()..].split_whitespace().next().unwrap()
}

/// The command lines of the "Try it" part, in order.
fn commands(text: &[String]) -> Vec<String> {
    let start = text.iter().position(|l| l.starts_with("Try it")).expect("Try it");
    text[start + 1..]
        .iter()
        .map(|l| l.trim_start())
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(str::to_owned)
        .collect()
}

fn find<'a>(cmds: &'a [String], prefix: &str, contains: &str) -> &'a str {
    cmds.iter().find(|c| c.starts_with(prefix) && c.contains(contains)).unwrap_or_else(|| panic!("{prefix} {contains}"))
}

/// Runs a script in `sh` with this build's `warden` first on the PATH; its output.
fn sh(script: &str) -> String {
    let dir = Path::new(BIN).parent().unwrap();
    let path = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .env("PATH", path)
        .env_remove("WARDEN_ADMIN_TOKEN")
        .env_remove("WARDEN_TOKEN")
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr)
}

/// The part of `out` after `@@name` and before the next marker.
fn part<'a>(out: &'a str, name: &str) -> &'a str {
    let from = out.find(&format!("@@{name}\n")).unwrap_or_else(|| panic!("no part {name} in:\n{out}"));
    let rest = &out[from + name.len() + 3..];
    &rest[..rest.find("@@").unwrap_or(rest.len())]
}

fn rsc(part: &str) -> Option<u16> {
    part.lines()
        .find_map(|l| l.to_ascii_lowercase().strip_prefix("x-m2m-rsc:").map(|v| v.trim().to_owned()))
        .and_then(|v| v.parse().ok())
}

#[test]
fn warden_up_prints_what_it_binds_and_its_commands_do_what_they_say() {
    let data = tempfile::tempdir().unwrap();
    let (up, text) = up(data.path());
    let cse = field(&text, "CSE (HTTP)").trim_end_matches("/cse-in").to_owned();
    assert!(!cse.ends_with(":0"), "the bound port is printed: {cse}");
    assert!(!text.iter().any(|l| l.contains("$WARDEN_ADMIN_TOKEN")), "the token was generated, not exported");
    assert!(text.iter().any(|l| l.contains("Quotas") && l.contains("consumer mni 1000")), "{text:#?}");
    for app in ["Rdemo.org.warden.press", "Rdemo.org.warden.substation"] {
        assert!(text.iter().any(|l| l.contains("Device cert") && l.contains(app)), "a certificate for {app}");
    }
    let cmds = commands(&text);
    let name = find(&cmds, "AE=", "");
    let admit = find(&cmds, "curl", "warden.thermostat");
    let reject = find(&cmds, "curl", "warden.retired");
    let press = find(&cmds, "curl", "--cert");
    let revoke = find(&cmds, "warden appid revoke", "");
    let get = find(&cmds, "curl -si http", "X-M2M-RI: $AE-3");
    let decisions = find(&cmds, "warden decisions", "");
    let device = find(&cmds, "warden device run", "");

    // Pasted twice: the names are fresh each time.
    for round in 0..2 {
        let out = sh(&format!("{name}\necho @@admit\n{admit}\necho @@reject\n{reject}\necho @@press\n{press}\n"));
        assert_eq!(rsc(part(&out, "admit")), Some(2001), "round {round}: {out}");
        assert_eq!(rsc(part(&out, "reject")), Some(4126), "round {round}: {out}");
        assert_eq!(rsc(part(&out, "press")), Some(2001), "round {round}: {out}");
    }

    // The device registers over mutual TLS with only --cse, --app-id and --data, creates its
    // profile's containers, sends data, and stops on SIGTERM.
    let dir = Path::new(BIN).parent().unwrap();
    let mut argv: Vec<&str> = device.split_whitespace().collect();
    assert_eq!(argv.remove(0), "warden");
    let mut dev = Proc::spawn(warden(&argv).env("PATH", dir));
    dev.until(|l| l.starts_with("registered as"));
    dev.until(|l| l.starts_with("container telemetry created"));
    dev.until(|l| l.starts_with("telemetry: sent"));
    dev.terminate();

    // The revocation: the admitted thermostat is refused within seconds.
    let poll = format!(
        "i=0; while [ $i -lt 50 ]; do if {get} | grep -qi 'x-m2m-rsc: 4126'; then echo REFUSED; break; fi; i=$((i+1)); sleep 0.1; done"
    );
    let out = sh(&format!(
        "{name}\necho @@admit\n{admit}\necho @@revoke\n{revoke} && echo REVOKED\necho @@get\n{poll}\necho @@log\n{decisions}\n"
    ));
    assert_eq!(rsc(part(&out, "admit")), Some(2001), "{out}");
    assert!(part(&out, "revoke").contains("REVOKED"), "{out}");
    assert!(part(&out, "get").contains("REFUSED"), "refused within 5 s: {out}");
    let log = part(&out, "log");
    assert!(log.contains("Rdemo.org.warden.retired") && log.contains("rejected"), "{log}");

    // `warden decisions` filters.
    let token = std::fs::read_to_string(data.path().join("admin-token")).unwrap();
    let run = |args: &[&str]| {
        let out = warden(args).arg("--cse").arg(&cse).env("WARDEN_TOKEN", token.trim()).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let rejected = run(&["decisions", "--outcome", "rejected", "--app-id", "Rdemo.org.warden.retired"]);
    let rows: Vec<&str> = rejected.lines().skip(1).collect();
    assert!(rows.len() >= 2, "{rejected}");
    assert!(rows.iter().all(|l| l.contains("Rdemo.org.warden.retired") && l.contains("rejected")), "{rejected}");
    let admitted = run(&["decisions", "--outcome", "admitted", "--limit", "1000"]);
    assert!(admitted.lines().skip(1).all(|l| l.contains(" admitted ")), "{admitted}");
    assert!(!admitted.contains("warden.retired"), "{admitted}");
    let json = run(&["decisions", "--json", "--app-id", "Rdemo.org.warden.press"]);
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(parsed.as_array().is_some_and(|a| a.len() >= 3), "two pasted rounds and the device: {json}");
    let out = warden(&["decisions", "--cse", &cse]).output().unwrap();
    assert!(!out.status.success(), "the admin token is required");
    up.terminate();
}
