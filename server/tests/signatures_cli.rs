//! The `watchdog signatures` contract (DESIGN.md), run against the built binary.

use std::io::Write;
use std::process::{Command, Stdio};

fn run(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_watchdog"))
        .arg("signatures")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("watchdog starts");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

fn records(stdout: &str) -> Vec<(String, String)> {
    stdout
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("each line is JSON");
            (
                v["signature"].as_str().unwrap().to_string(),
                v["template"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

const INPUT: &str = "\
Database timeout for user 123 request 8f91ab22-1c2d-4e5f-8a9b-0c1d2e3f4a5b after 3000 ms
Connection refused to 10.0.3.17:5432 (attempt 2)
{\"timestamp\":\"2026-03-30T19:30:00Z\",\"level\":\"error\",\"message\":\"Database timeout for user 98765 request 0a1b2c3d-4e5f-4a7b-8c9d-0e1f2a3b4c5d after 2500 ms\"}
2026-03-30 19:30:01,120 [ERROR] Connection refused to 10.0.9.201:5432 (attempt 5)

User alice logged in from 192.168.1.4
";

#[test]
fn one_record_per_line_grouped_with_templates() {
    let (code, stdout, stderr) = run(&["-"], INPUT);
    assert_eq!(code, 0, "{stderr}");
    let r = records(&stdout);
    assert_eq!(r.len(), 6);
    // The level a line names is part of its signature: the same message without a
    // level and at error level are two signatures with one template text.
    assert_ne!(r[0].0, r[2].0);
    assert_ne!(r[1].0, r[3].0);
    assert_eq!(r[0].1, r[2].1);
    assert_ne!(r[0].0, r[1].0);
    assert_ne!(r[5].0, r[0].0);
    assert!(r.iter().all(|(id, _)| id.len() == 16));
    assert_eq!(
        r[2].1,
        "Database timeout for user <*> request <*> after <*> ms"
    );
    assert_eq!(r[3].1, "Connection refused to <*>:<*> (attempt <*>)");
    assert_eq!(r[4].1, "");
}

#[test]
fn same_input_same_ids_from_a_file_or_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("in.log");
    std::fs::write(&path, INPUT).unwrap();
    let (code, from_file, _) = run(&[path.to_str().unwrap()], "");
    assert_eq!(code, 0);
    let (_, from_stdin, _) = run(&[], INPUT);
    let (_, again, _) = run(&["-"], INPUT);
    assert_eq!(from_file, from_stdin);
    assert_eq!(from_stdin, again);
}

#[test]
fn an_unreadable_file_is_a_clear_error() {
    let (code, stdout, stderr) = run(&["/nonexistent/app.log"], "");
    assert_ne!(code, 0);
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("cannot open /nonexistent/app.log"),
        "{stderr}"
    );
}
