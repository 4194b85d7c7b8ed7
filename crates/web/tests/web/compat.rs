//! The published Python client (`vendel-sdk` from PyPI) against a real server: the
//! script in `compat/` sends, reads status, batches, messages, devices and quota, and acts
//! as the Android app for pending, report and incoming.

use std::path::PathBuf;

use crate::helpers::*;
use crate::simulator::Sim;
use crate::sms::Caller;

/// The Python with `vendel-sdk` installed: `ENDER_COMPAT_PYTHON`, else the venv that
/// `.ci/run` creates.
fn python() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ENDER_COMPAT_PYTHON") {
        return Some(PathBuf::from(p));
    }
    let home = std::env::var_os("HOME")?;
    let p = PathBuf::from(home).join(".cache/ender/compat-venv/bin/python");
    p.exists().then_some(p)
}

#[tokio::test]
async fn the_vendel_python_sdk_works_against_ender() {
    if std::env::var_os("ENDER_SKIP_COMPAT_TESTS").is_some() {
        eprintln!("ENDER_SKIP_COMPAT_TESTS is set: skipping the Vendel SDK check");
        return;
    }
    let python = python().expect(
        "the Vendel SDK check needs a Python with vendel-sdk: python3 -m venv ~/.cache/ender/compat-venv && \
         ~/.cache/ender/compat-venv/bin/pip install -r compat/requirements.txt (or set ENDER_COMPAT_PYTHON)",
    );
    let app = TestApp::spawn_with(Options {
        dispatcher: true,
        ..Default::default()
    })
    .await;
    let caller = Caller::new(&app, "sdk@example.org").await;
    let device = Sim::register(&app, "sdk@example.org", "android", "SDK phone").await;
    sqlx::query("UPDATE devices SET per_minute_limit = 100")
        .execute(app.pool())
        .await
        .unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../compat/vendel_sdk_check.py");
    let out = tokio::process::Command::new(python)
        .arg(script)
        .env("ENDER_URL", app.url(""))
        .env("ENDER_API_KEY", &caller.key)
        .env("ENDER_DEVICE_ID", &device.id)
        .env("ENDER_DEVICE_KEY", &device.key)
        .env("ENDER_CHECK_WAIT", "15")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "the SDK check failed:\n{stdout}\n{stderr}");
    assert!(stdout.lines().any(|l| l.ends_with(" 0 failed")), "{stdout}");
}
