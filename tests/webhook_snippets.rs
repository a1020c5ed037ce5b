//! The webhook verifiers in docs/destinations.md, run for real.
//!
//! Each code block marked `<!-- verify:python -->` or `<!-- verify:node -->`
//! is extracted, given a small driver, and run with `python3` / `node` on a
//! payload signed by clickback's own `sign`: a valid signature must pass, a
//! tampered body, a wrong secret and a stale timestamp must fail. A receiver
//! who copies the docs gets code that works with what clickback sends.
//!
//! `python3` and `node` must be installed (CI installs them).

use std::io::Write;
use std::process::{Command, Stdio};

use clickback::delivery::platforms::webhook::sign;
use clickback::domain::unix_now;

const DOC: &str = include_str!("../docs/destinations.md");

const SECRET: &str = "whsec-0123456789abcdef";

const BODY: &str = r#"{"event":"conversion","conversion_id":"conv-1","status":"approved","revenue":"12.345","currency":"EUR"}"#;

/// The code of the first fenced block after `marker`.
fn snippet(marker: &str) -> String {
    let start = DOC
        .find(marker)
        .unwrap_or_else(|| panic!("docs/destinations.md has no {marker}"));
    let mut lines = DOC[start + marker.len()..].lines();
    lines
        .by_ref()
        .find(|line| line.starts_with("```"))
        .unwrap_or_else(|| panic!("no code block after {marker}"));
    let code: Vec<&str> = lines.take_while(|line| !line.starts_with("```")).collect();
    assert!(!code.is_empty(), "the block after {marker} is empty");
    code.join("\n")
}

/// Fails the test with an install hint when `program` is not on PATH.
fn require(program: &str) {
    let found = Command::new(program)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    assert!(
        found,
        "`{program}` is not on PATH: install it to run the docs' webhook snippets \
         (Debian/Ubuntu: apt-get install -y {}); CI installs it in .ci/run",
        if program == "node" { "nodejs" } else { program }
    );
}

/// Runs `program` on `script` with the signature in the environment and
/// `body` on stdin; true when it exits 0.
fn accepts(program: &str, script: &str, header: &str, body: &[u8]) -> bool {
    let file = std::env::temp_dir().join(format!(
        "clickback-webhook-snippet-{}-{}.{}",
        std::process::id(),
        header.len() + body.len(),
        if program == "node" { "js" } else { "py" }
    ));
    std::fs::write(&file, script).expect("write the snippet");
    let mut child = Command::new(program)
        .arg(&file)
        .env("CLICKBACK_SECRET", SECRET)
        .env("CLICKBACK_SIGNATURE", header)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {program}: {e}"));
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(body)
        .expect("write the body");
    let output = child.wait_with_output().expect("the snippet ran");
    let _ = std::fs::remove_file(&file);
    match output.status.code() {
        Some(0) => true,
        Some(1) => false,
        other => panic!(
            "{program} failed to run the snippet ({other:?}): {}",
            String::from_utf8_lossy(&output.stderr)
        ),
    }
}

fn python_script() -> String {
    format!(
        "{}\n\n\
         import os, sys\n\
         _body = sys.stdin.buffer.read()\n\
         _ok = verify_signature(os.environ['CLICKBACK_SECRET'].encode(), os.environ['CLICKBACK_SIGNATURE'], _body)\n\
         sys.exit(0 if _ok else 1)\n",
        snippet("<!-- verify:python -->")
    )
}

fn node_script() -> String {
    format!(
        "{}\n\n\
         const _chunks = [];\n\
         process.stdin.on('data', (c) => _chunks.push(c));\n\
         process.stdin.on('end', () => {{\n\
         \x20 const _ok = verifySignature(process.env.CLICKBACK_SECRET, process.env.CLICKBACK_SIGNATURE, Buffer.concat(_chunks));\n\
         \x20 process.exit(_ok ? 0 : 1);\n\
         }});\n",
        snippet("<!-- verify:node -->")
    )
}

/// The four cases every verifier must get right.
fn check(program: &str, script: &str) {
    require(program);
    let now = unix_now();
    let valid = sign(SECRET.as_bytes(), now, BODY.as_bytes());
    let tampered = BODY.replace("12.345", "99.999");
    let other_secret = sign(b"another-secret-0123", now, BODY.as_bytes());
    let stale = sign(SECRET.as_bytes(), now - 600, BODY.as_bytes());

    assert!(
        accepts(program, script, &valid, BODY.as_bytes()),
        "{program} refused a valid signature"
    );
    assert!(
        !accepts(program, script, &valid, tampered.as_bytes()),
        "{program} accepted a tampered body"
    );
    assert!(
        !accepts(program, script, &other_secret, BODY.as_bytes()),
        "{program} accepted another secret's signature"
    );
    assert!(
        !accepts(program, script, &stale, BODY.as_bytes()),
        "{program} accepted a signature 10 minutes old"
    );
}

#[test]
fn the_python_verifier_in_the_docs_accepts_clickbacks_signature_and_nothing_else() {
    check("python3", &python_script());
}

#[test]
fn the_node_verifier_in_the_docs_accepts_clickbacks_signature_and_nothing_else() {
    check("node", &node_script());
}
