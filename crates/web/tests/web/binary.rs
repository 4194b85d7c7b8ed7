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

/// `ender-web admin …` against a database: list and find people, suspend and lift it, set
/// a workspace's plan, read and save settings; bad input fails with a reason and changes
/// nothing; each change is in the admin audit log as done from the command line.
#[tokio::test]
async fn the_admin_commands_work_on_the_database_and_are_audited() {
    let db = ender_core::testing::test_db().await;
    let url = db.url();
    let admin = |args: &[&str]| {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_ender-web"));
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("DATABASE_URL", &url)
            .env("ENDER_SECRET_KEYS", ender_core::testing::TEST_SECRET_KEYS)
            .env("RUST_LOG", "warn")
            .arg("admin")
            .args(args)
            .stdin(Stdio::null())
            .kill_on_drop(true);
        cmd
    };
    let run = |args: &'static [&'static str]| {
        let mut cmd = admin(args);
        async move {
            let out = cmd.output().await.unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    ender_core::testing::create_workspace(&db.pool, "pat@example.org").await;
    ender_core::testing::create_workspace(&db.pool, "sam@example.org").await;

    let (ok, out, err) = run(&["users", "list", "--search", "pat@"]).await;
    assert!(ok, "{err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 1, "{out}");
    assert!(lines[0].starts_with("pat@example.org\t"), "{out}");

    let (ok, _, err) = run(&["suspend", "pat@example.org"]).await;
    assert!(ok, "{err}");
    let (ok, out, _) = run(&["users", "list", "--suspended"]).await;
    assert!(ok);
    assert!(out.starts_with("pat@example.org\tsuspended"), "{out}");
    let (ok, _, err) = run(&["unsuspend", "pat@example.org"]).await;
    assert!(ok, "{err}");
    let (ok, _, err) = run(&["suspend", "nobody@example.org"]).await;
    assert!(!ok);
    assert!(err.contains("not found"), "{err}");

    let (ok, _, err) = run(&["plan", "set", "pat@example.org", "pro"]).await;
    assert!(ok, "{err}");
    let plan: String = sqlx::query_scalar(
        "SELECT p.slug FROM workspaces w JOIN plans p ON p.id = w.plan_id JOIN users u ON u.id = w.personal_user_id WHERE u.email_normalized = 'pat@example.org'",
    )
    .fetch_one(&db.pool)
    .await
    .unwrap();
    assert_eq!(plan, "pro");
    let (ok, _, err) = run(&["plan", "set", "pat@example.org", "platinum"]).await;
    assert!(!ok);
    assert!(err.contains("no plan with slug platinum"), "{err}");

    let (ok, _, err) = run(&["settings", "set", "instance_name", "Clinic SMS"]).await;
    assert!(ok, "{err}");
    let (ok, out, _) = run(&["settings", "get", "instance_name"]).await;
    assert!(ok);
    assert_eq!(out.trim(), "instance_name\tClinic SMS");
    let (ok, _, err) = run(&["settings", "set", "banner_link", "ftp://example.org"]).await;
    assert!(!ok);
    assert!(err.contains("http:// or https://"), "{err}");
    let (ok, _, err) = run(&["settings", "get", "no_such_key"]).await;
    assert!(!ok);
    assert!(err.contains("no setting called no_such_key"), "{err}");
    let (ok, _, _) = run(&["settings", "set", "no_such_key", "x"]).await;
    assert!(!ok);
    // A secret is saved sealed, and never printed.
    let mut cmd = admin(&["settings", "set", "stripe_secret_key", "-"]);
    let mut child = cmd.stdin(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    {
        use tokio::io::AsyncWriteExt;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"sk_test_cli_secret\n").await.unwrap();
    }
    let out = child.wait_with_output().await.unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (ok, out, _) = run(&["settings", "get"]).await;
    assert!(ok);
    assert!(out.contains("stripe_secret_key\tset"), "{out}");
    assert!(!out.contains("sk_test_cli_secret"));

    let actions: Vec<(String, String)> = sqlx::query_as("SELECT action, actor FROM admin_audit ORDER BY id")
        .fetch_all(&db.pool)
        .await
        .unwrap();
    let names: Vec<&str> = actions.iter().map(|(a, _)| a.as_str()).collect();
    assert_eq!(
        names,
        [
            "user.suspended",
            "user.unsuspended",
            "workspace.plan_changed",
            "settings.changed",
            "settings.changed"
        ]
    );
    assert!(
        actions
            .iter()
            .all(|(_, actor)| *actor == actions[0].1 && !actor.is_empty())
    );
}
