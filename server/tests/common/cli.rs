//! Running the built `watchdog` binary in tests: a clean environment, collected output.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::prometheus::Killed;

/// Variables of the developer's shell that would change what the binary does.
pub const CLEARED: &[&str] = &[
    "WATCHDOG_CONFIG",
    "WATCHDOG_STATE_DIR",
    "WATCHDOG_LISTEN",
    "WATCHDOG_PORT",
    "WATCHDOG_DATABASE_URL",
    "WATCHDOG_STORAGE",
    "WATCHDOG_API_TOKEN",
    "WATCHDOG_SERVER",
    "WATCHDOG_SERVICE",
    "WATCHDOG_CLOCK",
    "WATCHDOG_MONITORING_WINDOW_SECS",
    "WATCHDOG_ALLOW_UNAUTHENTICATED",
    "WATCHDOG_SLACK_WEBHOOK_URL",
    "WATCHDOG_PAGERDUTY_ROUTING_KEY",
    "WATCHDOG_WEBHOOK_URL",
    "WATCHDOG_EXPLAINER",
    "WATCHDOG_LLM_URL",
    "WATCHDOG_OLLAMA_URL",
    "WATCHDOG_OLLAMA_MODEL",
    "OLLAMA_HOST",
    "SUPABASE_URL",
    "SUPABASE_SERVICE_ROLE_KEY",
];

/// `watchdog ARGS…` run in `cwd` with a clean environment plus `env`.
pub fn watchdog(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_watchdog"));
    c.current_dir(cwd).args(args).env("RUST_LOG", "warn");
    for k in CLEARED {
        c.env_remove(k);
    }
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

pub fn run_to_end(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    watchdog(cwd, args, env).output().expect("running watchdog")
}

pub fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// A long-running command whose stdout and stderr lines are collected as they come.
pub struct Running {
    child: Child,
    out: Arc<Mutex<Vec<String>>>,
    err: Arc<Mutex<Vec<String>>>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn collect(r: impl std::io::Read + Send + 'static) -> Arc<Mutex<Vec<String>>> {
    let lines: Arc<Mutex<Vec<String>>> = Arc::default();
    let l = lines.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            l.lock().unwrap().push(line);
        }
    });
    lines
}

impl Running {
    pub fn start(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Running {
        let mut child = watchdog(cwd, args, env)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("starting watchdog");
        let out = collect(child.stdout.take().unwrap());
        let err = collect(child.stderr.take().unwrap());
        Running { child, out, err }
    }

    /// Sends SIGTERM and waits (at most `secs`) for the exit status.
    pub fn terminate(&mut self, secs: u64) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(sent.success(), "kill -TERM {pid} failed");
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < until,
                "still running {secs} s after SIGTERM\n{}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn stdout(&self) -> String {
        self.out.lock().unwrap().join("\n")
    }

    pub fn stderr(&self) -> String {
        self.err.lock().unwrap().join("\n")
    }

    /// Waits (at most `secs`) until stdout contains every one of `needles`.
    pub async fn wait_stdout(&mut self, needles: &[&str], secs: u64) -> String {
        let until = Instant::now() + Duration::from_secs(secs);
        loop {
            let out = self.stdout();
            if needles.iter().all(|n| out.contains(n)) {
                return out;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "watchdog exited ({status}) before printing {needles:?}\nstdout:\n{out}\nstderr:\n{}",
                    self.stderr()
                );
            }
            if Instant::now() > until {
                panic!(
                    "no {needles:?} in {secs} s\nstdout:\n{out}\nstderr:\n{}",
                    self.stderr()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// A port nothing listens on (bound, then released).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The `http://…` address a server printed as `watchdog listening on http://…`.
pub fn listening_on(stdout: &str) -> String {
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("watchdog listening on "))
        .expect("a listening line")
        .to_string()
}

/// `watchdog serve --listen 127.0.0.1:0 --config CONFIG --state-dir STATE` with a clean
/// environment plus `WATCHDOG_API_TOKEN=token`, once it has said where it listens: the
/// process (killed when dropped) and its base URL. Its further output is drained.
pub fn serve(config: &Path, state_dir: &Path, token: &str) -> (Killed, String) {
    serve_with(
        [
            "--config".as_ref(),
            config.as_os_str(),
            "--state-dir".as_ref(),
            state_dir.as_os_str(),
        ],
        &[("WATCHDOG_API_TOKEN", token)],
    )
}

/// [`serve_with`] with event time driving the engine (`--clock data`, so a test controls
/// when windows pass), a 10-minute monitoring window and its state in `state_dir`.
pub fn serve_data_clock(state_dir: &Path, env: &[(&str, &str)]) -> (Killed, String) {
    serve_with(
        [
            "--clock".as_ref(),
            "data".as_ref(),
            "--monitoring-window-secs".as_ref(),
            "600".as_ref(),
            "--state-dir".as_ref(),
            state_dir.as_os_str(),
        ],
        env,
    )
}

/// `watchdog serve --listen 127.0.0.1:0 ARGS…` with a clean environment plus `env`, once
/// it has said where it listens: the process (killed when dropped) and its base URL. Its
/// further output is drained; its stderr goes to the test's.
pub fn serve_with<A: AsRef<OsStr>>(
    args: impl IntoIterator<Item = A>,
    env: &[(&str, &str)],
) -> (Killed, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_watchdog"));
    child
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("RUST_LOG", "warn");
    for k in CLEARED {
        child.env_remove(k);
    }
    for (k, v) in env {
        child.env(k, v);
    }
    let mut child = child
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("starting watchdog serve");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = lines
        .next()
        .expect("the server printed its address")
        .unwrap();
    let base = line
        .strip_prefix("watchdog listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    std::thread::spawn(move || for _ in lines {});
    (Killed(child), base)
}
