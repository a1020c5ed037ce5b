//! Starting the real `clickback` binary: command line, configuration errors,
//! the Redis it tries, and the configuration refresher on an empty store.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clickback::domain::offer::OfferInput;
use clickback::domain::{Offer, OfferId};
use clickback::offers::ConfigCache;
use clickback::store::{MemoryStore, Store};

/// The binary under test, with nothing from the caller's environment but
/// `PATH`, listening on a free port, and `vars` on top.
fn clickback(args: &[&str], vars: &[(&str, &str)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_clickback"));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("CLICKBACK_LISTEN", "127.0.0.1:0")
        .envs(vars.iter().copied())
        .stdin(Stdio::null());
    command
}

/// Runs a command that is expected to exit on its own, killing it if it is
/// still running after `limit` (then it started a server it should not have).
fn run_to_exit(mut command: Command, limit: Duration) -> Output {
    let mut child = command
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("clickback starts");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait for clickback").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let output = child.wait_with_output().expect("output of clickback");
            panic!(
                "clickback was still running after {limit:?}; stderr:\n{}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().expect("output of clickback")
}

/// Asserts that stderr is exactly one human line (no debug dump) and returns it.
fn one_line(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "stderr is not one line:\n{stderr}");
    let line = lines[0].to_owned();
    assert!(line.starts_with("clickback: "), "{line}");
    for dump in ["Error {", "kind:", "Bind {", "Unavailable(", "Some("] {
        assert!(!line.contains(dump), "debug dump in {line}");
    }
    line
}

/// A loopback port nothing listens on (bound, then let go).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local address").port()
}

/// Kills a started clickback when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

const EXIT_LIMIT: Duration = Duration::from_secs(20);

#[test]
fn help_prints_every_variable_and_exits_zero() {
    // Act
    let output = run_to_exit(clickback(&["--help"], &[]), EXIT_LIMIT);

    // Assert
    assert_eq!(output.status.code(), Some(0));
    let help = String::from_utf8_lossy(&output.stdout);
    for variable in clickback::config::VARIABLES {
        assert!(
            help.contains(variable.name),
            "{} missing:\n{help}",
            variable.name
        );
    }
    assert!(help.contains("0.0.0.0:8080"), "defaults missing:\n{help}");
}

#[test]
fn version_prints_the_name_and_version_and_exits_zero() {
    // Act
    let output = run_to_exit(clickback(&["--version"], &[]), EXIT_LIMIT);

    // Assert
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        format!("clickback {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn an_unknown_argument_is_refused_in_one_line_with_exit_code_2() {
    // Act
    let output = run_to_exit(clickback(&["--frobnicate"], &[]), EXIT_LIMIT);

    // Assert
    assert_eq!(output.status.code(), Some(2));
    let line = one_line(&output);
    assert!(line.contains("--frobnicate"), "{line}");
    assert!(line.contains("--help"), "{line}");
}

#[test]
fn a_short_admin_token_stops_the_start_saying_how_to_make_one() {
    // Arrange
    let token = "short-admin-secret";

    // Act
    let output = run_to_exit(
        clickback(&[], &[("CLICKBACK_ADMIN_TOKEN", token)]),
        EXIT_LIMIT,
    );

    // Assert
    assert_eq!(output.status.code(), Some(2));
    let line = one_line(&output);
    assert!(line.contains("CLICKBACK_ADMIN_TOKEN"), "{line}");
    assert!(line.contains("openssl rand -base64 32"), "{line}");
    assert!(!line.contains(token), "the token was printed: {line}");
}

#[test]
fn an_unusable_listen_address_stops_the_start_in_one_line_naming_it() {
    // Arrange: without the log, whose start-up warnings are not the failure.
    let command = clickback(
        &[],
        &[("CLICKBACK_LISTEN", "nonsense"), ("RUST_LOG", "off")],
    );

    // Act
    let output = run_to_exit(command, EXIT_LIMIT);

    // Assert
    assert_eq!(output.status.code(), Some(2));
    let line = one_line(&output);
    assert!(line.contains("CLICKBACK_LISTEN=\"nonsense\""), "{line}");
    assert!(
        line.contains("0.0.0.0:8080"),
        "no example of a good value: {line}"
    );
}

#[test]
fn a_listen_address_in_use_stops_the_start_with_exit_code_1() {
    // Arrange
    let taken = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    let address = taken.local_addr().expect("local address").to_string();
    let command = clickback(&[], &[("CLICKBACK_LISTEN", &address), ("RUST_LOG", "off")]);

    // Act
    let output = run_to_exit(command, EXIT_LIMIT);

    // Assert
    assert_eq!(output.status.code(), Some(1));
    let line = one_line(&output);
    assert!(line.contains(&address), "{line}");
}

#[test]
fn a_malformed_redis_url_stops_the_start_showing_it_without_its_password() {
    // Arrange
    let url = "redis://:hunter2-redis-pw@127.0.0.1:notaport/0";

    // Act
    let output = run_to_exit(clickback(&[], &[("REDIS_URL", url)]), EXIT_LIMIT);

    // Assert
    assert_eq!(output.status.code(), Some(2));
    let line = one_line(&output);
    assert!(
        line.contains("REDIS_URL=\"redis://:****@127.0.0.1:notaport/0\""),
        "{line}"
    );
    assert!(
        !line.contains("hunter2"),
        "the password was printed: {line}"
    );
}

#[test]
fn with_redis_unreachable_the_log_names_the_url_it_tried_without_the_password() {
    // Arrange
    let port = closed_port();
    let url = format!("redis://app:hunter2-redis-pw@127.0.0.1:{port}/0");
    let shown = format!("redis://app:****@127.0.0.1:{port}/0");
    let mut child = clickback(&[], &[("REDIS_URL", &url)])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("clickback starts");
    let stderr = child.stderr.take().expect("piped stderr");
    let _running = Running(child);
    let (lines, received) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                return;
            }
        }
    });

    // Act: read the log until the line naming the URL, within a deadline.
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let found = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match received.recv_timeout(left) {
            Ok(line) => {
                let names_url = line.contains(&shown);
                seen.push(line);
                if names_url {
                    break true;
                }
            }
            Err(_) => break false,
        }
    };

    // Assert
    let log = seen.join("\n");
    assert!(found, "no log line names {shown}:\n{log}");
    assert!(!log.contains("hunter2"), "the password was logged:\n{log}");
}

#[tokio::test]
async fn refreshing_an_empty_store_reports_no_change() {
    // Arrange: an empty store, loaded once as at start.
    let store = MemoryStore::new();
    let cache = ConfigCache::new();
    cache.reload(&store).await.expect("load the empty store");

    // Act
    let first = cache.refresh_if_changed(&store).await.expect("refresh");
    let second = cache.refresh_if_changed(&store).await.expect("refresh");

    // Assert
    assert!(!first, "an unchanged empty store was reported as changed");
    assert!(!second, "an unchanged empty store was reported as changed");
}

#[tokio::test]
async fn refreshing_after_the_first_offer_reports_one_change() {
    // Arrange
    let store = MemoryStore::new();
    let cache = ConfigCache::new();
    cache.reload(&store).await.expect("load the empty store");
    let input: OfferInput = serde_json::from_str(
        r#"{"url":"https://shop.example/?a=1","payout":"2.5","currency":"EUR","postback_token":"tok-12345"}"#,
    )
    .expect("offer input");
    let offer = Offer::from_input(OfferId::parse("first").expect("id"), input).expect("offer");
    store.put_offer(&offer).await.expect("stored");

    // Act
    let first = cache.refresh_if_changed(&store).await.expect("refresh");
    let second = cache.refresh_if_changed(&store).await.expect("refresh");

    // Assert
    assert!(first, "the new offer was not picked up");
    assert!(
        cache.offer("first").is_some(),
        "the new offer is not cached"
    );
    assert!(!second, "nothing moved, yet a change was reported");
}
