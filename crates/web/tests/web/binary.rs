//! The README's run command, as a person runs it: `ender-web` with no configuration starts
//! a private PostgreSQL, prints the setup link, serves the login page, stops cleanly on
//! SIGTERM (taking the cluster down), and `admin create` works on the same data afterwards.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

fn ender_web(data_dir: &std::path::Path, port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ender-web"));
    cmd.env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("ENDER_DATA_DIR", data_dir)
        .env("ENDER_BIND", format!("127.0.0.1:{port}"))
        .env("ENDER_PUBLIC_URL", format!("http://127.0.0.1:{port}"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    cmd
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_run_command_works_with_no_configuration() {
    let data = tempfile::Builder::new()
        .prefix("ender-run-")
        .tempdir_in("/tmp")
        .unwrap();
    // Under root the cluster runs as another user, who must be able to reach the folder.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(data.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let port = free_port();
    let mut child = ender_web(data.path(), port).spawn().unwrap();
    let mut stderr = BufReader::new(child.stderr.take().unwrap()).lines();
    let link = tokio::time::timeout(Duration::from_secs(60), async {
        while let Some(line) = stderr.next_line().await.unwrap() {
            if let Some(i) = line.find("http://") {
                return line[i..].trim().to_owned();
            }
        }
        panic!("ender-web exited without printing the setup link");
    })
    .await
    .expect("the setup link within 60 s");
    assert!(
        link.starts_with(&format!("http://127.0.0.1:{port}/setup?token=")),
        "{link}"
    );
    tokio::spawn(async move { while let Ok(Some(_)) = stderr.next_line().await {} });

    let client = crate::helpers::client();
    let login = client
        .get(format!("http://127.0.0.1:{port}/login"))
        .send()
        .await
        .unwrap();
    assert_eq!(login.status(), StatusCode::OK);
    assert_eq!(client.get(&link).send().await.unwrap().status(), StatusCode::OK);
    assert!(data.path().join("postgres/PG_VERSION").exists());

    let pid = child.id().unwrap();
    Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .await
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert!(status.success(), "{status}");
    assert!(
        !data.path().join("postgres/postmaster.pid").exists(),
        "the cluster was stopped"
    );

    // Later runs reuse the same data.
    let out = ender_web(data.path(), port)
        .args(["admin", "create", "--email", "root@example.org"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("Created root@example.org is an administrator."),
        "{stdout}"
    );
    assert!(stdout.contains("/reset-password?token="), "{stdout}");

    // The operator can invite an address (for ENDER_SIGNUP=invite): the link is printed.
    let out = ender_web(data.path(), port)
        .args(["admin", "invite", "--email", "guest@example.org"])
        .output()
        .await
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("Invitation for guest@example.org"), "{stdout}");
    assert!(stdout.contains("/signup?invite="), "{stdout}");
    let out = ender_web(data.path(), port)
        .args(["admin", "invite", "--email", "not an address"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--email"));
    assert!(!data.path().join("postgres/postmaster.pid").exists());
}
