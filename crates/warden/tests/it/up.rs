//! `warden up` as a newcomer meets it: started on free ports, it prints its addresses and commands
//! to paste; the commands are run as printed (in `sh`, with this build's `warden` on the PATH) and
//! do what the text says. `warden decisions` and `warden device run` are driven against it too.

use std::path::Path;
use std::process::Command;

use crate::support::{Process, Stream, WARDEN, clean, path, run, warden};

/// `warden up` on free ports in `data`, until its welcome text is printed; the text's lines.
fn up(data: &Path) -> (Process, Vec<String>) {
    let mut p = Process::start(&mut warden(&[
        "up",
        "--data",
        path(data),
        "--listen",
        "127.0.0.1:0",
        "--listen-tls",
        "127.0.0.1:0",
        "--registry-listen",
        "127.0.0.1:0",
    ]));
    p.wait_line(Stream::Stdout, |l| l.starts_with("  warden decisions"));
    let text = p.lines_read(Stream::Stdout);
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
    let dir = Path::new(WARDEN).parent().unwrap();
    let search = format!("{}:{}", dir.display(), std::env::var("PATH").unwrap_or_default());
    let ran = run(clean(&mut Command::new("sh")).arg("-c").arg(script).env("PATH", search));
    ran.stdout + &ran.stderr
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
    let dir = Path::new(WARDEN).parent().unwrap();
    let mut argv: Vec<&str> = device.split_whitespace().collect();
    assert_eq!(argv.remove(0), "warden");
    let mut dev = Process::start(warden(&argv).env("PATH", dir));
    dev.wait_line(Stream::Stdout, |l| l.starts_with("registered as"));
    dev.wait_line(Stream::Stdout, |l| l.starts_with("container telemetry created"));
    dev.wait_line(Stream::Stdout, |l| l.starts_with("telemetry: sent"));
    dev.terminate().exits(0); // a clean stop on SIGTERM

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
    let query = |args: &[&str]| {
        run(warden(args).arg("--cse").arg(&cse).env("WARDEN_TOKEN", token.trim())).exits(0).stdout.clone()
    };
    let rejected = query(&["decisions", "--outcome", "rejected", "--app-id", "Rdemo.org.warden.retired"]);
    let rows: Vec<&str> = rejected.lines().skip(1).collect();
    assert!(rows.len() >= 2, "{rejected}");
    assert!(rows.iter().all(|l| l.contains("Rdemo.org.warden.retired") && l.contains("rejected")), "{rejected}");
    let admitted = query(&["decisions", "--outcome", "admitted", "--limit", "1000"]);
    assert!(admitted.lines().skip(1).all(|l| l.contains(" admitted ")), "{admitted}");
    assert!(!admitted.contains("warden.retired"), "{admitted}");
    let json = query(&["decisions", "--json", "--app-id", "Rdemo.org.warden.press"]);
    let parsed: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert!(parsed.as_array().is_some_and(|a| a.len() >= 3), "two pasted rounds and the device: {json}");
    let anonymous = run(&mut warden(&["decisions", "--cse", &cse]));
    assert_ne!(anonymous.code, Some(0), "the admin token is required: {}", anonymous.stderr);
    up.terminate().exits(0); // a clean stop on SIGTERM
}
