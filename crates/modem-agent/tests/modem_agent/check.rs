//! `ender-modem-agent --check` as a person runs it: the real binary, a configuration file,
//! and the simulated modem at the other end of the port.

use std::process::Output;

use ender_modem_agent::sim::{SimModem, SimOptions};

fn config(port: &str, pin: Option<&str>) -> tempfile::NamedTempFile {
    let pin = pin.map(|p| format!("pin = \"{p}\"\n")).unwrap_or_default();
    let text = format!(
        "server = \"https://ender.example.org\"\n\n[[modem]]\nname = \"dongle-1\"\nkey = \"dk_test\"\nport = \"{port}\"\nbaud = 115200\n{pin}"
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    file
}

async fn agent(args: &[&str]) -> Output {
    let run = tokio::process::Command::new(env!("CARGO_BIN_EXE_ender-modem-agent"))
        .args(args)
        .env_clear()
        .kill_on_drop(true)
        .output();
    crate::within(std::time::Duration::from_secs(30), run)
        .await
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[tokio::test]
async fn check_reports_each_modem_and_succeeds() {
    let sim = SimModem::start(SimOptions {
        pin: Some("2468".to_owned()),
        ..SimOptions::default()
    })
    .unwrap();
    let file = config(&sim.port(), Some("2468"));
    let output = agent(&["--check", "--config", &file.path().display().to_string()]).await;
    let out = stdout(&output);
    assert!(output.status.success(), "{out}\n{}", stderr(&output));
    assert!(out.starts_with("dongle-1: ok: "), "{out}");
    for expected in ["-73 dBm", "registered (home network)", "operator Ender Mobile"] {
        assert!(out.contains(expected), "{expected:?} missing from {out}");
    }
    assert_eq!(sim.pin_attempts(), 1);
    assert!(sim.pdu_mode());
}

#[tokio::test]
async fn check_fails_clearly_for_a_missing_port() {
    let file = config("/dev/ttyUSB-ender-missing", None);
    let output = agent(&["--check", "--config", &file.path().display().to_string()]).await;
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stdout(&output).trim(),
        "dongle-1: FAILED: cannot open /dev/ttyUSB-ender-missing: no such device (is the modem plugged in, and is this its port?)"
    );
}

#[tokio::test]
async fn check_fails_clearly_for_a_wrong_pin_and_tries_it_once() {
    let sim = SimModem::start(SimOptions {
        pin: Some("2468".to_owned()),
        ..SimOptions::default()
    })
    .unwrap();
    let file = config(&sim.port(), Some("1111"));
    let output = agent(&["--check", "--config", &file.path().display().to_string()]).await;
    assert_eq!(output.status.code(), Some(1));
    let out = stdout(&output);
    assert!(
        out.contains("dongle-1: FAILED: the SIM rejected the PIN"),
        "{out}"
    );
    assert!(out.contains("a SIM locks after 3 wrong PINs"), "{out}");
    assert!(!out.contains("1111") && !stderr(&output).contains("1111"));
    assert_eq!(sim.pin_attempts(), 1);
}

#[tokio::test]
async fn an_invalid_configuration_is_refused_before_any_modem_is_touched() {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        "server = \"https://ender.example.org\"\n[[modem]]\nname = \"x\"\nkey = \"nokey\"\nport = \"/dev/null\"\n",
    )
    .unwrap();
    let output = agent(&["--check", "--config", &file.path().display().to_string()]).await;
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("modem 1 (\"x\") key: must start with \"dk_\""),
        "{err}"
    );
}

#[tokio::test]
async fn without_check_a_wrong_pin_stops_the_agent_with_the_modem_named() {
    let sim = SimModem::start(SimOptions {
        pin: Some("2468".to_owned()),
        ..SimOptions::default()
    })
    .unwrap();
    let file = config(&sim.port(), Some("1111"));
    let data = tempfile::tempdir().unwrap();
    let output = agent(&[
        "--config",
        &file.path().display().to_string(),
        "--data-dir",
        &data.path().display().to_string(),
    ])
    .await;
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("every modem has stopped")
            && err.contains("modem \"dongle-1\" has stopped: the SIM rejected the PIN"),
        "{err}"
    );
    assert!(!err.contains("1111"), "{err}");
    assert_eq!(sim.pin_attempts(), 1);
}

#[tokio::test]
async fn without_check_the_agent_runs_until_sigterm_and_stops_cleanly() {
    let sim = SimModem::start(SimOptions::default()).unwrap();
    // Nothing listens on the discard port: the agent keeps trying to reach Ender.
    let file = config(&sim.port(), None);
    std::fs::write(
        file.path(),
        std::fs::read_to_string(file.path())
            .unwrap()
            .replace("https://ender.example.org", "http://127.0.0.1:9"),
    )
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_ender-modem-agent"))
        .args(["--config", &file.path().display().to_string()])
        .env_clear()
        .env("ENDER_AGENT_DATA_DIR", data.path())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    // Running: the modem was set up and its folder made.
    crate::within(std::time::Duration::from_secs(20), async {
        while !(sim.pdu_mode() && data.path().join("dongle-1/outbox").exists()) {
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
    })
    .await;
    let pid = child.id().unwrap();
    let killed = tokio::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    assert!(killed.success());
    let output = crate::within(std::time::Duration::from_secs(20), child.wait_with_output())
        .await
        .unwrap();
    assert!(output.status.success(), "{}", stderr(&output));
}
